//! History reads on JetStream: latency and NATS traffic per read.
//!
//! Starts `nats-server -js -m` and one release `gyre` in cluster mode whose namespace `hist`
//! keeps history (size 100, ttl 300 s). Channel `hist:c` gets 100 publications interleaved
//! with 9 other channels (1,000 messages in the stream). Then, for each kind of read, `N`
//! sequential `POST /api/history` calls, first with nobody subscribed on the node, then with a
//! subscriber there (a store-backed channel keeps its recent publications); then `N`
//! WebSocket subscribes that recover 10 and 90 publications (connect + subscribe, time to the
//! subscribe reply). Reports p50/p99 latency and, from nats-server's monitoring endpoint, the
//! messages the node sent to NATS (`/connz` in_msgs: requests and direct gets) and received
//! (out_msgs: replies and fetched messages), and JetStream API requests (`/jsz` api.total;
//! direct gets are not counted there) per read. Loopback only; the loader shares the 2 cores.
//!
//! Run: `cargo bench --bench history_read -- 200`. `GYRE_BIN=path/to/gyre` measures another
//! build of gyre with the same loader.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use support::{start_gyre, start_nats_monitored, API_KEY, SECRET};

const OTHER_CHANNELS: usize = 9;
const PUBLICATIONS: u64 = 100;

fn main() {
    let reads = support::arg(200);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_nats, url, monitoring) = start_nats_monitored(dir.path());
    let config = write_config(dir.path(), &url);
    let gyre = std::env::var("GYRE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gyre").to_owned());
    let (_node, addr) = start_gyre(&gyre, &config);
    let outcome = actix_rt::System::new().block_on(run(&addr, &monitoring, reads));
    support::report(outcome);
}

fn write_config(dir: &Path, nats: &str) -> std::path::PathBuf {
    let path = dir.join("history_read.json");
    let config = format!(
        r#"{{"client":{{"token":{{"hmac_secret_key":"{SECRET}"}}}},"http_api":{{"key":"{API_KEY}"}},
           "channel":{{"namespaces":[{{"name":"hist","history_size":100,"history_ttl":"300s",
             "allow_subscribe_for_client":true,"force_recovery":true}}]}},
           "log":{{"level":"warn"}},"broker":{{"enabled":true,"type":"nats","nats":{{"url":"{nats}"}}}}}}"#
    );
    std::fs::write(&path, config).expect("write config");
    path
}

async fn api(client: &awc::Client, addr: &str, method: &str, body: Value) -> Result<Value, String> {
    let mut response = client
        .post(format!("http://{addr}/api/{method}"))
        .insert_header(("X-API-Key", API_KEY))
        .send_body(body.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let body = response.body().limit(16 << 20).await.map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    value.get("result").cloned().ok_or_else(|| format!("{method} failed: {value}"))
}

/// NATS counters: (client in_msgs, client out_msgs, JetStream API requests).
async fn counters(client: &awc::Client, monitoring: &str) -> Result<[u64; 3], String> {
    let get = |path: &'static str| async move {
        let mut response = client.get(format!("{monitoring}{path}")).send().await.map_err(|e| e.to_string())?;
        response.json::<Value>().limit(1 << 22).await.map_err(|e| e.to_string())
    };
    let connz = get("/connz").await?;
    let jsz = get("/jsz").await?;
    let sum = |key: &str| connz["connections"].as_array().map_or(0, |c| c.iter().filter_map(|c| c[key].as_u64()).sum());
    Ok([sum("in_msgs"), sum("out_msgs"), jsz["api"]["total"].as_u64().unwrap_or(0)])
}

async fn run(addr: &str, monitoring: &str, reads: usize) -> Result<String, String> {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut epoch = String::new();
    for n in 1..=PUBLICATIONS {
        let result = api(&client, addr, "publish", json!({"channel": "hist:c", "data": {"n": n}})).await?;
        epoch = result["epoch"].as_str().unwrap_or_default().to_owned();
        for other in 0..OTHER_CHANNELS {
            api(&client, addr, "publish", json!({"channel": format!("hist:o{other}"), "data": n})).await?;
        }
    }
    let queries = [
        ("position (limit 0)", json!({"limit": 0}), 0),
        ("newest (limit 1, reverse)", json!({"limit": 1, "reverse": true}), 1),
        ("10 from the middle (since 50, limit 10)", json!({"limit": 10, "since": {"offset": 50, "epoch": epoch}}), 10),
        ("all 100 (limit -1)", json!({"limit": -1}), 100),
    ];
    let mut report = String::from(
        "| read | subscriber on the node | p50 | p99 | NATS msgs sent / read | received / read | JS API / read |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut subscriber = None;
    for with_subscriber in [false, true] {
        if with_subscriber {
            subscriber = Some(support::subscriber(addr, "watcher", "hist:c").await?);
        }
        for (name, query, expected) in &queries {
            let mut body = query.clone();
            body["channel"] = json!("hist:c");
            let read = || async {
                let page = api(&client, addr, "history", body.clone()).await?;
                let got = page["publications"].as_array().map_or(0, Vec::len);
                if got != *expected {
                    return Err(format!("{name}: {got} publications, expected {expected}"));
                }
                Ok(())
            };
            let row = measure(&client, monitoring, reads, read).await?;
            report.push_str(&format!("| {name} | {} | {row} |\n", if with_subscriber { "yes" } else { "no" }));
        }
    }
    for missed in [10, 90] {
        let since = PUBLICATIONS - missed;
        let recover = || recover(addr, &epoch, since, missed as usize);
        let row = measure(&client, monitoring, reads, recover).await?;
        report.push_str(&format!("| recovery of {missed} (WebSocket connect + subscribe) | yes | {row} |\n"));
    }
    drop(subscriber);
    Ok(report)
}

/// Runs `read` `reads` times; the row's latency and NATS columns.
async fn measure<F, Fut>(client: &awc::Client, monitoring: &str, reads: usize, read: F) -> Result<String, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    read().await?; // warm-up
    let before = counters(client, monitoring).await?;
    let mut latencies = Vec::with_capacity(reads);
    for _ in 0..reads {
        let started = Instant::now();
        read().await?;
        latencies.push(started.elapsed());
    }
    let after = counters(client, monitoring).await?;
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    let per_read = |i: usize| (after[i] - before[i]) as f64 / reads as f64;
    Ok(format!("{:.2} ms | {:.2} ms | {:.1} | {:.1} | {:.1}", at(0.5), at(0.99), per_read(0), per_read(1), per_read(2)))
}

/// A fresh WebSocket client recovering from `since`: time to its subscribe reply.
async fn recover(addr: &str, epoch: &str, since: u64, expected: usize) -> Result<(), String> {
    let (_, mut socket) = awc::Client::new()
        .ws(format!("ws://{addr}/connection/websocket"))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let token = encode(&Header::default(), &json!({"sub": "r"}), &EncodingKey::from_secret(SECRET.as_bytes()))
        .map_err(|e| e.to_string())?;
    let subscribe = json!({"channel": "hist:c", "recover": true, "offset": since, "epoch": epoch});
    let frame =
        format!("{}\n{}", json!({"id": 1, "connect": {"token": token}}), json!({"id": 2, "subscribe": subscribe}));
    socket.send(awc::ws::Message::Text(frame.into())).await.map_err(|e| e.to_string())?;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
        let Ok(Some(Ok(awc::ws::Frame::Text(text)))) = frame else {
            return Err(format!("no subscribe reply: {frame:?}"));
        };
        for line in String::from_utf8_lossy(&text).lines() {
            let reply: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            if reply["id"] == 2 {
                let got = reply["subscribe"]["publications"].as_array().map_or(0, Vec::len);
                if reply["subscribe"]["recovered"] != true || got != expected {
                    return Err(format!("recovery from {since}: {reply}"));
                }
                return Ok(());
            }
        }
    }
}
