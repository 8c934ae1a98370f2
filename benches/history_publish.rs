//! History-enabled publish throughput: memory engine vs cluster-wide history on JetStream.
//!
//! For each engine, starts a release `gyre` (memory: one node; JetStream: one clustered node on
//! its own `nats-server -js` with file storage) whose namespace `hist` keeps history (size 100,
//! ttl 300 s). 16 concurrent keep-alive HTTP publishers send `N` publications round-robin over
//! 100 channels (`hist:0` … `hist:99`) through `POST /api/publish`, each waiting for its answer (which
//! carries the assigned offset). Reports publishes/s and request latency; then checks every
//! channel's history ends at the expected offset with contiguous offsets. The load generator
//! runs on the same 2 cores. Loopback only.
//!
//! Run: `cargo bench --bench history_publish -- 10000`.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use support::{start_gyre, start_nats, API_KEY, SECRET};

const CHANNELS: usize = 100;
const PUBLISHERS: usize = 16;

fn main() {
    let total = support::arg(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut report =
        String::from("| engine | publishes | publishes/s | p50 | p99 | max |\n|---|---|---|---|---|---|\n");
    for engine in ["memory", "jetstream"] {
        let (_nats, url) = if engine == "jetstream" {
            let (proc, url) = start_nats(dir.path());
            (Some(proc), Some(url))
        } else {
            (None, None)
        };
        let config = write_history_config(dir.path(), engine, url.as_deref());
        let (_node, addr) = start_gyre(env!("CARGO_BIN_EXE_gyre"), &config);
        let outcome = actix_rt::System::new().block_on(run(&addr, total));
        match outcome {
            Ok(row) => report.push_str(&format!("| {engine} | {row} |\n")),
            Err(error) => support::report(Err(format!("{engine}: {error}"))),
        }
    }
    support::report(Ok(report));
}

fn write_history_config(dir: &Path, name: &str, nats: Option<&str>) -> std::path::PathBuf {
    let broker = nats
        .map(|url| format!(r#","broker":{{"enabled":true,"type":"nats","nats":{{"url":"{url}"}}}}"#))
        .unwrap_or_default();
    let path = dir.join(format!("{name}.json"));
    let config = format!(
        r#"{{"client":{{"token":{{"hmac_secret_key":"{SECRET}"}}}},"http_api":{{"key":"{API_KEY}"}},
           "channel":{{"namespaces":[{{"name":"hist","history_size":100,"history_ttl":"300s"}}]}},
           "log":{{"level":"warn"}}{broker}}}"#
    );
    std::fs::write(&path, config).expect("write config");
    path
}

async fn publish(client: &awc::Client, addr: &str, channel: usize, n: usize) -> Result<u64, String> {
    let body = format!(r#"{{"channel":"hist:{channel}","data":{{"n":{n}}}}}"#);
    let mut response = client
        .post(format!("http://{addr}/api/publish"))
        .insert_header(("X-API-Key", API_KEY))
        .send_body(body)
        .await
        .map_err(|e| e.to_string())?;
    let body = response.body().await.map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    value["result"]["offset"].as_u64().ok_or_else(|| format!("publish failed: {value}"))
}

async fn publisher(addr: String, first: usize, total: usize) -> Result<Vec<Duration>, String> {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut latencies = Vec::new();
    for n in (first..total).step_by(PUBLISHERS) {
        let started = Instant::now();
        publish(&client, &addr, n % CHANNELS, n).await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

async fn run(addr: &str, total: usize) -> Result<String, String> {
    // Warm-up: every channel once (creates streams' subjects and connections).
    let warm = awc::Client::default();
    for channel in 0..CHANNELS {
        publish(&warm, addr, channel, 0).await?;
    }
    let started = Instant::now();
    let publishers = (0..PUBLISHERS).map(|first| publisher(addr.to_owned(), first, total));
    let mut latencies = Vec::with_capacity(total);
    for result in join_all(publishers).await {
        latencies.extend(result?);
    }
    let elapsed = started.elapsed();
    check_histories(&warm, addr, total).await?;
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Ok(format!(
        "{total} | {:.0} | {} µs | {} µs | {:.1} ms",
        total as f64 / elapsed.as_secs_f64(),
        at(0.5).as_micros(),
        at(0.99).as_micros(),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    ))
}

/// Every channel got 1 warm-up publication plus its share, with contiguous offsets.
async fn check_histories(client: &awc::Client, addr: &str, total: usize) -> Result<(), String> {
    for channel in 0..CHANNELS {
        let expected = 1 + (total / CHANNELS) as u64 + u64::from(channel < total % CHANNELS);
        let mut response = client
            .post(format!("http://{addr}/api/history"))
            .insert_header(("X-API-Key", API_KEY))
            .send_body(format!(r#"{{"channel":"hist:{channel}","limit":-1}}"#))
            .await
            .map_err(|e| e.to_string())?;
        let body = response.body().limit(16 << 20).await.map_err(|e| e.to_string())?;
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let offsets: Vec<u64> = value["result"]["publications"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["offset"].as_u64()).collect())
            .unwrap_or_default();
        let top = value["result"]["offset"].as_u64().unwrap_or(0);
        let contiguous = offsets.windows(2).all(|w| w[1] == w[0] + 1) && offsets.last() == Some(&top);
        if top != expected || !contiguous {
            return Err(format!("hist:{channel}: top {top}, expected {expected}, contiguous {contiguous}"));
        }
    }
    Ok(())
}
