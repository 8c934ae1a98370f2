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
//! A third row, `raw JetStream`, is the ceiling of the store itself on the same box: an async-nats
//! client publishes straight into a stream configured as gyre's (file storage, republish to live
//! subjects, 100 messages per subject, direct get, duplicate window) with the same
//! expected-last-subject-sequence header, from as many concurrent publishers over as many
//! subjects, no HTTP and no gyre. CPU per publish is read from /proc for gyre and nats-server.
//!
//! Run: `cargo bench --bench history_publish -- 10000`; `HIST_PUBLISHERS` (default 16) and
//! `HIST_CHANNELS` (default 100) change the load, `NATS_SERVER_BIN` the nats-server binary.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use support::{start_gyre, start_nats, API_KEY, SECRET};

static CHANNELS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| env_count("HIST_CHANNELS", 100));
static PUBLISHERS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| env_count("HIST_PUBLISHERS", 16));
/// Padding in the raw probe's payload, to match the size of gyre's stored messages.
static RAW_PADDING: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    "x".repeat(std::env::var("RAW_PADDING").ok().and_then(|v| v.parse().ok()).unwrap_or(0))
});
/// NATS connections the raw probe spreads its publishers over (one is what gyre has).
static RAW_CONNECTIONS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| env_count("RAW_CONNECTIONS", 1));

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

fn main() {
    let total = support::arg(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut report = format!(
        "{} publishers, {} channels\n| engine | publishes | publishes/s | p50 | p99 | max | CPU µs/publish gyre + nats-server |\n|---|---|---|---|---|---|---|\n",
        *PUBLISHERS, *CHANNELS
    );
    let engines = std::env::var("HIST_ENGINES").unwrap_or_else(|_| "memory,jetstream,raw JetStream".into());
    for engine in engines.split(',').map(str::trim) {
        let (nats, url) = if engine != "memory" {
            let (proc, url) = start_nats(dir.path());
            (Some(proc), Some(url))
        } else {
            (None, None)
        };
        let nats_pid = nats.as_ref().map(support::Proc::pid);
        let outcome = if engine == "raw JetStream" {
            let url = url.clone().unwrap_or_default();
            measured(None, nats_pid, total, || tokio_runtime().block_on(raw_jetstream(&url, total)))
        } else {
            let config = write_history_config(dir.path(), engine, url.as_deref());
            let (node, addr) = start_gyre(env!("CARGO_BIN_EXE_gyre"), &config);
            let warmed = actix_rt::System::new().block_on(warm_up(&addr));
            let outcome = warmed.and_then(|()| {
                measured(Some(node.pid()), nats_pid, total, || actix_rt::System::new().block_on(run(&addr, total)))
            });
            // Checked after the measurement: reading every history is not part of publishing.
            let outcome = outcome.and_then(|row| {
                actix_rt::System::new().block_on(check_histories(&awc::Client::default(), &addr, total)).map(|()| row)
            });
            drop(node);
            outcome
        };
        match outcome {
            Ok(row) => report.push_str(&format!("| {engine} | {row} |\n")),
            Err(error) => support::report(Err(format!("{engine}: {error}"))),
        }
    }
    support::report(Ok(report));
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Runs `load`, adding the CPU gyre and nats-server spent meanwhile (per publish) to its row.
fn measured(
    gyre: Option<u32>,
    nats: Option<u32>,
    total: usize,
    load: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    let before = (gyre.map(cpu_micros), nats.map(cpu_micros));
    let row = load()?;
    let per = |pid: Option<u32>, before: Option<u64>| match (pid, before) {
        (Some(pid), Some(before)) => format!("{:.0}", (cpu_micros(pid) - before) as f64 / total as f64),
        _ => "–".to_owned(),
    };
    Ok(format!("{row} | {} + {}", per(gyre, before.0), per(nats, before.1)))
}

/// User + system CPU time of a process, in µs (from /proc, clock ticks of 10 ms).
fn cpu_micros(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) close with ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) * 10_000
}

/// The store's own ceiling: gyre's stream shape and headers, straight from async-nats.
async fn raw_jetstream(url: &str, total: usize) -> Result<String, String> {
    use async_nats::jetstream::{self, stream};
    let mut contexts = Vec::new();
    for _ in 0..*RAW_CONNECTIONS {
        contexts.push(jetstream::new(async_nats::connect(url).await.map_err(|e| e.to_string())?));
    }
    let js = contexts[0].clone();
    js.get_or_create_stream(stream::Config {
        name: "probe".into(),
        subjects: vec!["probe.history.>".into()],
        max_messages_per_subject: 100,
        discard: stream::DiscardPolicy::Old,
        max_age: Duration::from_secs(300),
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        storage: stream::StorageType::File,
        republish: Some(stream::Republish {
            source: "probe.history.>".into(),
            destination: "probe.live.>".into(),
            headers_only: false,
        }),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let publishers =
        (0..*PUBLISHERS).map(|first| raw_publisher(contexts[first % contexts.len()].clone(), first, total));
    let mut latencies = Vec::with_capacity(total);
    for result in join_all(publishers).await {
        latencies.extend(result?);
    }
    Ok(summary(total, started.elapsed(), latencies))
}

/// Publishes to the subjects `first`, `first + P`, … (no other publisher writes them), each
/// with the sequence of its subject's last message as the expected one, as gyre does.
async fn raw_publisher(
    js: async_nats::jetstream::Context,
    first: usize,
    total: usize,
) -> Result<Vec<Duration>, String> {
    let mut last_sequence = std::collections::HashMap::new();
    let mut latencies = Vec::new();
    let owned = (*CHANNELS / *PUBLISHERS).max(1);
    for (k, n) in (first..total).step_by(*PUBLISHERS).enumerate() {
        let subject = format!("probe.history.c{}", first + *PUBLISHERS * (k % owned));
        let mut headers = async_nats::HeaderMap::new();
        let expected: u64 = last_sequence.get(&subject).copied().unwrap_or(0);
        headers.insert("Nats-Expected-Last-Subject-Sequence", expected.to_string().as_str());
        headers.insert("gyre-offset", (n / *CHANNELS + 1).to_string().as_str());
        headers.insert("gyre-epoch", "probe");
        headers.insert("gyre-time", "1796660618000");
        let payload = bytes::Bytes::from(format!(r#"{{"data":{{"n":{n},"pad":"{}"}}}}"#, *RAW_PADDING));
        let started = Instant::now();
        let ack = js
            .publish_with_headers(subject.clone(), headers, payload)
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| format!("{subject}: {e}"))?;
        latencies.push(started.elapsed());
        last_sequence.insert(subject, ack.sequence);
    }
    Ok(latencies)
}

fn summary(total: usize, elapsed: Duration, mut latencies: Vec<Duration>) -> String {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    format!(
        "{total} | {:.0} | {} µs | {} µs | {:.1} ms",
        total as f64 / elapsed.as_secs_f64(),
        at(0.5).as_micros(),
        at(0.99).as_micros(),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    )
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
    for n in (first..total).step_by(*PUBLISHERS) {
        let started = Instant::now();
        publish(&client, &addr, n % *CHANNELS, n).await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// Every channel once (creates the streams' subjects and the connections).
async fn warm_up(addr: &str) -> Result<(), String> {
    let warm = awc::Client::default();
    for channel in 0..*CHANNELS {
        publish(&warm, addr, channel, 0).await?;
    }
    Ok(())
}

async fn run(addr: &str, total: usize) -> Result<String, String> {
    let started = Instant::now();
    let publishers = (0..*PUBLISHERS).map(|first| publisher(addr.to_owned(), first, total));
    let mut latencies = Vec::with_capacity(total);
    for result in join_all(publishers).await {
        latencies.extend(result?);
    }
    Ok(summary(total, started.elapsed(), latencies))
}

/// Every channel got 1 warm-up publication plus its share, with contiguous offsets.
async fn check_histories(client: &awc::Client, addr: &str, total: usize) -> Result<(), String> {
    for channel in 0..*CHANNELS {
        let expected = 1 + (total / *CHANNELS) as u64 + u64::from(channel < total % *CHANNELS);
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
