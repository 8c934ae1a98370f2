//! Memory stays bounded when a subscriber reads nothing: starts the real `gyre` binary, connects
//! one subscriber that never reads, publishes N messages (default 100 000, ~200 bytes each) to its
//! channel through the HTTP API, samples the server's VmRSS, and finally drains the stuck socket to
//! confirm it was closed with 3008 "slow". Loopback only; bounded by N.
//!
//! Run: `cargo bench --bench slow_subscriber -- 100000`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};

const SECRET: &str = "bench-secret";
const API_KEY: &str = "bench-key";

fn main() {
    let count: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"client":{{"token":{{"hmac_secret_key":"{SECRET}"}}}},"http_api":{{"key":"{API_KEY}"}},
               "channel":{{"without_namespace":{{"allow_subscribe_for_client":true}}}},"log":{{"level":"warn"}}}}"#
        ),
    )
    .expect("write config");
    let (mut child, addr) = start_node(&config);
    let pid = child.id();
    let outcome = actix_rt::System::new().block_on(run(pid, &addr, count));
    let _ = child.kill();
    let _ = child.wait();
    match outcome {
        Ok(report) => println!("{report}"),
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            std::process::exit(1);
        }
    }
}

fn start_node(config: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gyre"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--port", "0", "--address", "127.0.0.1", "--log_level", "info"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start gyre");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("gyre printed its address").expect("read stdout");
        if let Some(at) = line.find("addr=").filter(|_| line.contains("listening")) {
            break line[at + 5..].split_whitespace().next().unwrap_or_default().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn run(pid: u32, addr: &str, count: usize) -> Result<String, String> {
    let (_, mut stuck) = awc::Client::new()
        .ws(format!("ws://{addr}/connection/websocket"))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let token =
        encode(&Header::default(), &serde_json::json!({"sub": "stuck"}), &EncodingKey::from_secret(SECRET.as_bytes()))
            .map_err(|e| e.to_string())?;
    let frame = format!(
        "{{\"id\":1,\"connect\":{{\"token\":\"{token}\"}}}}\n{{\"id\":2,\"subscribe\":{{\"channel\":\"flood\"}}}}"
    );
    stuck.send(awc::ws::Message::Text(frame.into())).await.map_err(|e| e.to_string())?;
    // Read only the two replies, then never read again.
    let mut replies = 0;
    while replies < 2 {
        match tokio::time::timeout(Duration::from_secs(10), stuck.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(text)))) => replies += String::from_utf8_lossy(&text).split('\n').count(),
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("subscribe failed: {other:?}")),
        }
    }
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
