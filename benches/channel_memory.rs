//! Heap bytes the registry keeps per channel that nobody on this node subscribes to (issue #13,
//! defect 3: one large broadcast must not hold kilobytes per channel).
//!
//! Run: `cargo bench --bench channel_memory -- [channels]` (default 20000). In process: a real
//! [`Registry`] actor gets one `Publish` per channel — as a `broadcast` to that many channels
//! does — into a namespace with history (size 10, TTL 2 s). The heap is counted by dhat's
//! allocator (every live byte gyre asked for, no allocator slack, no RSS effects), right after
//! the publishes (history alive) and again once the history expired (only the stream
//! positions are left, kept for `history_meta_ttl`). Channel names are `hist:c<n>` (~11 bytes).

use std::time::Duration;

use actix::prelude::*;
use gyre::channel::ChannelRules;
use gyre::config::{ChannelOptions, NamespaceSettings, Settings};
use gyre::domain::{Payload, Publication};
use gyre::registry::messages::Publish;
use gyre::registry::Registry;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const TTL: Duration = Duration::from_secs(2);

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

fn main() {
    let channels: usize =
        std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let _profiler = dhat::Profiler::builder().testing().trim_backtraces(Some(1)).build();
    let system = System::new();
    system.block_on(async move {
        let mut settings = Settings::default();
        settings.channel.namespaces = vec![NamespaceSettings {
            name: "hist".into(),
            options: ChannelOptions { history_size: 10, history_ttl: TTL, ..Default::default() },
        }];
        let rules = ChannelRules::from_settings(&settings).expect("channel rules");
        let registry = Registry::new(settings.client.queue_max_size, Duration::from_secs(3600)).start();
        let data = Payload::from(r#"{"x":1}"#);
        let resolved: Vec<_> =
            (0..channels).map(|n| rules.resolve(&format!("hist:c{n}")).expect("channel resolves")).collect();

        let before = live_bytes();
        for channel in resolved {
            let publication = Publication { data: data.clone(), ..Default::default() };
            let message = Publish { channel, publication, skip_history: false, idempotency_key: None };
            gyre::registry::messages::publish(&registry, message).await.expect("published");
        }
        // Let channel actors (if any) settle: their idle reports reach the registry.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let alive = live_bytes();
        tokio::time::sleep(TTL + Duration::from_secs(3)).await;
        let expired = live_bytes();

        let per = |bytes: usize| bytes.saturating_sub(before) as f64 / channels as f64;
        println!("channels: {channels}");
        println!("history alive (1 publication each): {:.0} B per channel", per(alive));
        println!("history expired (position kept):     {:.0} B per channel", per(expired));
    });
}
