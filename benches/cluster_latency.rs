//! Publish → deliver latency: single node (memory), cluster same node, cluster cross node.
//!
//! Starts a real `nats-server` and real `gyre` binaries on loopback. One subscriber sits on node A;
//! each sample publishes one message through the HTTP API (of node A or B) and times until the
//! subscriber's WebSocket receives it. Sequential, bounded by N.
//!
//! With `history`, the channel is in a namespace with history (`hist:`): in cluster mode every
//! publication is stored in JetStream and reaches the subscriber through the stream's RePublish.
//!
//! Run: `cargo bench --bench cluster_latency -- 2000` and `… -- 2000 history`.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::{start_gyre, start_nats, subscriber, write_config, API_KEY};

fn main() {
    let samples: usize = support::arg(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_nats, nats_url) = start_nats(dir.path());
    let single_cfg = write_config(dir.path(), "single.json", None);
    let cluster_cfg = write_config(dir.path(), "cluster.json", Some(&nats_url));
    let history = std::env::args().any(|a| a == "history");
    if history {
        support::add_history_namespace(&single_cfg);
        support::add_history_namespace(&cluster_cfg);
    }
    let prefix = if history { "hist:lat-" } else { "lat-" };
    let gyre = env!("CARGO_BIN_EXE_gyre");
    let (_single, single) = start_gyre(gyre, &single_cfg);
    let (_a, a) = start_gyre(gyre, &cluster_cfg);
    let (_b, b) = start_gyre(gyre, &cluster_cfg);
    let report = actix_rt::System::new().block_on(async move {
        let single = measure(&single, &single, samples, prefix).await?;
        let same = measure(&a, &a, samples, prefix).await?;
        let cross = measure(&a, &b, samples, prefix).await?;
        Ok::<_, String>(format!(
            "samples per case: {samples}\n\
             | case | p50 | p99 | max |\n|---|---|---|---|\n\
             | single node, memory engine | {} | {} | {} |\n\
             | cluster, publish and subscriber on node A | {} | {} | {} |\n\
             | cluster, publish on B, subscriber on A | {} | {} | {} |\n\
             cross-node extra latency vs single node: p50 {:+.0} us, p99 {:+.0} us",
            us(single.0),
            us(single.1),
            us(single.2),
            us(same.0),
            us(same.1),
            us(same.2),
            us(cross.0),
            us(cross.1),
            us(cross.2),
            cross.0 - single.0,
            cross.1 - single.1,
        ))
    });
    support::report(report);
}

fn us(value: f64) -> String {
    format!("{value:.0} µs")
}

/// (p50, p99, max) in microseconds.
async fn measure(
    subscriber_node: &str,
    publisher_node: &str,
    samples: usize,
    prefix: &str,
) -> Result<(f64, f64, f64), String> {
    let channel = format!("{prefix}{}", publisher_node.replace([':', '.'], "-"));
    let mut socket = subscriber(subscriber_node, "bench", &channel).await?;
    let http = awc::Client::new();
    let mut latencies = Vec::with_capacity(samples);
    for n in 0..samples + 100 {
        let request = http
            .post(format!("http://{publisher_node}/api/publish"))
            .insert_header(("X-API-Key", API_KEY))
            .send_body(format!("{{\"channel\":\"{channel}\",\"data\":{{\"n\":{n}}}}}"));
        let started = Instant::now();
        let publish = actix_rt::spawn(async move { request.await.map(|r| r.status().is_success()) });
        loop {
            match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
                Ok(Some(Ok(awc::ws::Frame::Text(text)))) if String::from_utf8_lossy(&text).contains("\"pub\"") => break,
                Ok(Some(Ok(_))) => continue,
                other => return Err(format!("publication {n} not delivered: {other:?}")),
            }
        }
        let elapsed = started.elapsed().as_secs_f64() * 1e6;
        if !matches!(publish.await, Ok(Ok(true))) {
            return Err(format!("publish {n} failed"));
        }
        if n >= 100 {
            latencies.push(elapsed); // the first 100 warm up connections and caches
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok((at(0.5), at(0.99), latencies[latencies.len() - 1]))
}
