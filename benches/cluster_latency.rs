//! Publish → deliver latency: single node (memory), cluster same node, cluster cross node.
//!
//! Starts a real `nats-server` and real `gyre` binaries on loopback. One subscriber sits on node A;
//! each sample publishes one message through the HTTP API (of node A or B) and times until the
//! subscriber's WebSocket receives it. Sequential, bounded by N.
//!
//! Run: `cargo bench --bench cluster_latency -- 2000`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};

const SECRET: &str = "bench-secret";
const API_KEY: &str = "bench-key";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let samples: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_nats, nats_url) = start_nats(dir.path());
    let single_cfg = write_config(dir.path(), "single.json", None);
    let cluster_cfg = write_config(dir.path(), "cluster.json", Some(&nats_url));
    let (_single, single) = start_gyre(&single_cfg);
    let (_a, a) = start_gyre(&cluster_cfg);
    let (_b, b) = start_gyre(&cluster_cfg);
    let report = actix_rt::System::new().block_on(async move {
        let single = measure(&single, &single, samples).await?;
        let same = measure(&a, &a, samples).await?;
        let cross = measure(&a, &b, samples).await?;
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
    match report {
        Ok(report) => println!("{report}"),
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            std::process::exit(1);
        }
    }
}

fn us(value: f64) -> String {
    format!("{value:.0} µs")
}

fn start_nats(dir: &std::path::Path) -> (Proc, String) {
    let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
    let child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", "-1", "-js", "--ports_file_dir"])
        .arg(dir)
        .arg("-sd")
        .arg(dir.join("js"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    let ports = dir.join(format!("nats-server_{}.ports", child.id()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = loop {
        if let Ok(text) = std::fs::read_to_string(&ports) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Some(url) = value["nats"][0].as_str() {
                    break url.to_owned();
                }
            }
        }
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    (Proc(child), url)
}

fn write_config(dir: &std::path::Path, name: &str, nats: Option<&str>) -> std::path::PathBuf {
    let broker = nats
        .map(|url| format!(r#","broker":{{"enabled":true,"type":"nats","nats":{{"url":"{url}"}}}}"#))
        .unwrap_or_default();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"{{"client":{{"token":{{"hmac_secret_key":"{SECRET}"}}}},"http_api":{{"key":"{API_KEY}"}},
               "channel":{{"without_namespace":{{"allow_subscribe_for_client":true}}}},"log":{{"level":"warn"}}{broker}}}"#
        ),
    )
    .expect("write config");
    path
}

fn start_gyre(config: &std::path::Path) -> (Proc, String) {
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
    (Proc(child), addr)
}

/// (p50, p99, max) in microseconds.
async fn measure(subscriber_node: &str, publisher_node: &str, samples: usize) -> Result<(f64, f64, f64), String> {
    let (_, mut socket) = awc::Client::new()
        .ws(format!("ws://{subscriber_node}/connection/websocket"))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let token =
        encode(&Header::default(), &serde_json::json!({"sub": "bench"}), &EncodingKey::from_secret(SECRET.as_bytes()))
            .map_err(|e| e.to_string())?;
    let channel = format!("lat{}", Instant::now().elapsed().as_nanos() % 1_000_000 + samples as u128);
    let frame = format!(
        "{{\"id\":1,\"connect\":{{\"token\":\"{token}\"}}}}\n{{\"id\":2,\"subscribe\":{{\"channel\":\"{channel}\"}}}}"
    );
    socket.send(awc::ws::Message::Text(frame.into())).await.map_err(|e| e.to_string())?;
    let mut replies = 0;
    while replies < 2 {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(text)))) => replies += String::from_utf8_lossy(&text).split('\n').count(),
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("subscribe failed: {other:?}")),
        }
    }
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
