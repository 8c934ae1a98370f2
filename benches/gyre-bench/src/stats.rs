//! Counters and histograms shared by every connection and publisher of a run.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency histogram in microseconds (1 µs … 60 s, 3 significant digits; longer ones count as 60 s).
pub struct Hist(Mutex<Histogram<u64>>);

impl Default for Hist {
    fn default() -> Self {
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid");
        Hist(Mutex::new(hist))
    }
}

impl Hist {
    pub fn record_us(&self, us: u64) {
        if let Ok(mut hist) = self.0.lock() {
            hist.saturating_record(us.max(1));
        }
    }

    pub fn percentiles(&self) -> Percentiles {
        let Ok(hist) = self.0.lock() else {
            return Percentiles::default();
        };
        if hist.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: hist.len(),
            p50_ms: ms(hist.value_at_quantile(0.50)),
            p90_ms: ms(hist.value_at_quantile(0.90)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            max_ms: ms(hist.max()),
        }
    }

    /// Adds every value recorded in `other` (e.g. one round's histogram into a total).
    pub fn add(&self, other: &Hist) {
        let Ok(theirs) = other.0.lock().map(|h| h.clone()) else {
            return;
        };
        if let Ok(mut hist) = self.0.lock() {
            let _ = hist.add(&theirs);
        }
    }

    pub fn reset(&self) {
        if let Ok(mut hist) = self.0.lock() {
            hist.reset();
        }
    }
}

/// Summary of a latency histogram, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Step number that marks warm-up publications: delivered and counted, not in any histogram.
pub const WARMUP_STEP: u32 = u32::MAX;
/// Steps a run can have (rates × phases).
pub const MAX_STEPS: usize = 64;

/// Everything the connections and publishers of one run report into.
pub struct Stats {
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub disconnected: AtomicU64,
    pub delivered: AtomicU64,
    pub pings: AtomicU64,
    pub decode_errors: AtomicU64,
    pub published: AtomicU64,
    pub publish_errors: AtomicU64,
    pub connect_latency: Hist,
    /// Publish → deliver latency, per step.
    pub latency: Vec<Hist>,
    /// HTTP API round trip, per step.
    pub api_latency: Vec<Hist>,
    /// First error of each kind, for the report.
    pub first_errors: Mutex<Vec<String>>,
    /// Deliveries per connection.
    pub received: Vec<AtomicU64>,
    /// Publications made to each channel (successful API calls).
    pub channel_published: Vec<AtomicU64>,
}

impl Stats {
    pub fn new(connections: usize, channels: usize) -> Stats {
        Stats {
            connected: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            published: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            connect_latency: Hist::default(),
            latency: (0..MAX_STEPS).map(|_| Hist::default()).collect(),
            api_latency: (0..MAX_STEPS).map(|_| Hist::default()).collect(),
            first_errors: Mutex::new(Vec::new()),
            received: (0..connections).map(|_| AtomicU64::new(0)).collect(),
            channel_published: (0..channels).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Keeps the first few distinct error messages.
    pub fn note_error(&self, error: String) {
        if let Ok(mut errors) = self.first_errors.lock() {
            let kind = error.split(':').next().unwrap_or_default().to_owned();
            if errors.len() < 10 && !errors.iter().any(|e| e.starts_with(&kind)) {
                errors.push(error);
            }
        }
    }

    pub fn errors(&self) -> Vec<String> {
        self.first_errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// A delivered publication on connection `conn`.
    pub fn record_delivery(&self, conn: usize, step: u32, latency_us: u64) {
        self.delivered.fetch_add(1, Relaxed);
        if let Some(count) = self.received.get(conn) {
            count.fetch_add(1, Relaxed);
        }
        if let Some(hist) = self.latency.get(step as usize) {
            hist.record_us(latency_us);
        }
    }

    /// Publications made so far to the channels of one connection.
    pub fn published_to(&self, channels: &[u32]) -> u64 {
        channels.iter().filter_map(|&ch| self.channel_published.get(ch as usize)).map(|c| c.load(Relaxed)).sum()
    }
}

/// Messages a subscriber should have received but did not.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize)]
pub struct Loss {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    /// Subscribers that missed at least one publication.
    pub subscribers_with_loss: u64,
    pub max_lost_per_subscriber: u64,
}

impl Loss {
    pub fn add_subscriber(&mut self, expected: u64, received: u64) {
        let lost = expected.saturating_sub(received);
        self.expected += expected;
        self.received += received;
        self.lost += lost;
        if lost > 0 {
            self.subscribers_with_loss += 1;
            self.max_lost_per_subscriber = self.max_lost_per_subscriber.max(lost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_ms() {
        let hist = Hist::default();
        for us in 1..=1000 {
            hist.record_us(us);
        }
        let p = hist.percentiles();
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 0.5).abs() < 0.01);
        assert!((p.max_ms - 1.0).abs() < 0.01);
    }

    #[test]
    fn loss_is_expected_minus_received_per_subscriber() {
        let mut loss = Loss::default();
        loss.add_subscriber(10, 10);
        loss.add_subscriber(10, 7);
        loss.add_subscriber(10, 12);
        assert_eq!((loss.expected, loss.received, loss.lost), (30, 29, 3));
        assert_eq!((loss.subscribers_with_loss, loss.max_lost_per_subscriber), (1, 3));
    }
}
