//! Memory stays bounded when a subscriber reads nothing: starts the real `gyre` binary, connects
//! one subscriber that never reads, publishes N messages (default 100 000, ~200 bytes each) to its
//! channel through the HTTP API, samples the server's VmRSS, and finally drains the stuck socket to
//! confirm it was closed with 3008 "slow". Loopback only; bounded by N.
//!
//! Run: `cargo bench --bench slow_subscriber -- 100000`.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::{rss_kib, start_gyre, subscriber, write_config, API_KEY};

fn main() {
    let count: usize = support::arg(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), "config.json", None);
    let (node, addr) = start_gyre(env!("CARGO_BIN_EXE_gyre"), &config);
    let outcome = actix_rt::System::new().block_on(run(node.pid(), &addr, count));
    drop(node);
    support::report(outcome);
}

async fn run(pid: u32, addr: &str, count: usize) -> Result<String, String> {
    // Reads only the connect and subscribe replies, then never reads again.
    let mut stuck = subscriber(addr, "stuck", "flood").await?;
    let baseline = rss_kib(pid);
    let http = awc::Client::new();
    let payload = "x".repeat(160);
    let mut peak = baseline;
    let started = Instant::now();
    for n in 0..count {
        let body = format!("{{\"channel\":\"flood\",\"data\":{{\"n\":{n},\"p\":\"{payload}\"}}}}");
        let response = http
            .post(format!("http://{addr}/api/publish"))
            .insert_header(("X-API-Key", API_KEY))
            .send_body(body)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("publish {n} failed: {}", response.status()));
        }
        if n % 1000 == 0 {
            peak = peak.max(rss_kib(pid));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let end = rss_kib(pid);
    peak = peak.max(end);
    let mut close = None;
    let mut delivered = 0usize;
    while close.is_none() {
        match tokio::time::timeout(Duration::from_secs(10), stuck.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(text)))) => {
                delivered += String::from_utf8_lossy(&text).matches("\"pub\"").count()
            }
            Ok(Some(Ok(awc::ws::Frame::Close(reason)))) => close = Some(reason.map(|r| u16::from(r.code)).unwrap_or(0)),
            Ok(Some(Ok(_))) => {}
            _ => close = Some(0),
        }
    }
    Ok(format!(
        "published: {count} messages in {elapsed:.1} s ({:.0}/s, one HTTP request each)\n\
         rss baseline: {baseline} KiB\nrss peak: {peak} KiB\nrss at end: {end} KiB\n\
         stuck subscriber: received {delivered} publications, then close code {}",
        count as f64 / elapsed,
        close.unwrap_or(0)
    ))
}
