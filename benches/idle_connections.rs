//! Memory per idle connection: starts the real `gyre` binary, opens N WebSocket connections that
//! each `connect` (HS256 JWT) and `subscribe` to their own channel, and reads the server's
//! VmRSS from /proc before and after. Loopback only; bounded by N and a timeout.
//!
//! Run: `cargo bench --bench idle_connections -- 1000` (default N = 1000).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};

const SECRET: &str = "bench-secret";

fn main() {
    let count: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"client":{{"token":{{"hmac_secret_key":"{SECRET}"}}}},"http_api":{{"key":"k"}},
               "channel":{{"without_namespace":{{"allow_subscribe_for_client":true}}}},"log":{{"level":"warn"}}}}"#
        ),
    )
    .expect("write config");
    let (mut child, addr) = start_node(&config);
    let pid = child.id();
    let system = actix_rt::System::new();
    let outcome = system.block_on(measure(pid, &addr, count));
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

async fn open(addr: &str, user: usize) -> Result<actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>, String> {
    let (_, mut socket) = awc::Client::new()
        .ws(format!("ws://{addr}/connection/websocket"))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let token = encode(
        &Header::default(),
        &serde_json::json!({"sub": user.to_string()}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    let frame = format!(
        "{{\"id\":1,\"connect\":{{\"token\":\"{token}\"}}}}\n{{\"id\":2,\"subscribe\":{{\"channel\":\"user{user}\"}}}}"
    );
    socket.send(awc::ws::Message::Text(frame.into())).await.map_err(|e| e.to_string())?;
    let mut replies = 0;
    while replies < 2 {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(text)))) => {
                let text = String::from_utf8_lossy(&text);
                if text.contains("error") {
                    return Err(format!("server refused: {text}"));
                }
                replies += text.split('\n').count();
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("connection {user} failed: {other:?}")),
        }
    }
    Ok(socket)
}

async fn measure(pid: u32, addr: &str, count: usize) -> Result<String, String> {
    // Warm up allocator arenas and worker threads so the baseline is not an empty process.
    let mut sockets = Vec::with_capacity(count + 10);
    for user in 0..10 {
        sockets.push(open(addr, 1_000_000 + user).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    for user in 0..count {
        sockets.push(open(addr, user).await?);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let per_connection = (after.saturating_sub(before)) as f64 * 1024.0 / count as f64;
    Ok(format!(
        "connections: {count}\nrss before: {before} KiB\nrss after: {after} KiB\nrss per connected+subscribed connection: {:.0} bytes ({:.1} KiB)\nsequential connect+subscribe: {:.0}/s",
        per_connection,
        per_connection / 1024.0,
        count as f64 / connect_secs
    ))
}
