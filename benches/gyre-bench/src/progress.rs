//! A once-per-second progress line on stderr: phase, connections, deliveries/s, publishes/s.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stats::Stats;

/// The phase name the progress line shows.
#[derive(Clone, Default)]
pub struct Phase(Arc<Mutex<String>>);

impl Phase {
    pub fn set(&self, name: impl Into<String>) {
        if let Ok(mut phase) = self.0.lock() {
            *phase = name.into();
        }
    }

    fn get(&self) -> String {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// Prints the progress line every second until the process exits (the task is detached).
pub fn spawn(label: String, stats: Arc<Stats>, phase: Phase) {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        let (mut delivered, mut published) = (0, 0);
        loop {
            ticker.tick().await;
            let now_delivered = stats.delivered.load(Relaxed);
            let now_published = stats.published.load(Relaxed);
            eprintln!(
                "[{label} {:>4}s] {:<28} conns {} (failed {}, dropped {}) | deliveries/s {} | publishes/s {} (errors {})",
                started.elapsed().as_secs(),
                phase.get(),
                stats.connected.load(Relaxed),
                stats.connect_failed.load(Relaxed),
                stats.disconnected.load(Relaxed),
                now_delivered - delivered,
                now_published - published,
                stats.publish_errors.load(Relaxed),
            );
            (delivered, published) = (now_delivered, now_published);
        }
    });
}
