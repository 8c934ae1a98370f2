//! Time from a NATS restart to deliveries resuming, with many active channels.
//!
//! Starts `nats-server` and one clustered release `gyre`; 8 WebSocket clients subscribe to 125
//! channels each (1,000 channels with a local subscriber, so the node holds 1,000 NATS
//! subscriptions). Then nats-server is killed and restarted on the same port and store; from the
//! restart, every channel is published to through the HTTP API (retrying while the node answers
//! "internal error") until each of the 1,000 channels has delivered one publication to its client.
//! Loopback only; bounded by a 60 s deadline.
//!
//! With `history`, the channels are in a namespace with history (`hist:ch0` …), so they live in
//! JetStream: JetStream itself must be back before a publish is accepted, and nothing published
//! after the restart may be missed.
//!
//! Run: `cargo bench --bench nats_restart -- 1000` and `cargo bench --bench nats_restart -- 1000 history`.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};
use support::{start_gyre, start_nats_on, write_config, Socket, API_KEY, SECRET};

const PER_CLIENT: usize = 125;

fn main() {
    let channels: usize = support::arg(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let (nats, url) = start_nats_on(dir.path(), "-1");
    let port = url.rsplit(':').next().unwrap_or_default().to_owned();
    let history = std::env::args().any(|a| a == "history");
    let config = write_config(dir.path(), "cluster.json", Some(&url));
    if history {
        support::add_history_namespace(&config);
    }
    let (_node, addr) = start_gyre(env!("CARGO_BIN_EXE_gyre"), &config);
    let prefix = if history { "hist:ch" } else { "ch" };
    let outcome = actix_rt::System::new().block_on(run(&addr, channels, nats, dir.path(), &port, prefix));
    support::report(outcome);
}

async fn client(addr: &str, user: usize, channels: &[String]) -> Result<Socket, String> {
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
    let mut frame = format!("{{\"id\":1,\"connect\":{{\"token\":\"{token}\"}}}}");
    for (i, channel) in channels.iter().enumerate() {
        frame.push_str(&format!("\n{{\"id\":{},\"subscribe\":{{\"channel\":\"{channel}\"}}}}", i + 2));
    }
    socket.send(awc::ws::Message::Text(frame.into())).await.map_err(|e| e.to_string())?;
    let mut replies = 0;
    while replies < channels.len() + 1 {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(text)))) => {
                let text = String::from_utf8_lossy(&text);
                if text.contains("\"error\"") {
                    return Err(format!("refused: {text}"));
                }
                replies += text.split('\n').filter(|l| l.contains("\"id\"")).count();
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("client {user} failed: {other:?}")),
        }
    }
    Ok(socket)
}

async fn run(
    addr: &str,
    count: usize,
    nats: support::Proc,
    dir: &std::path::Path,
    port: &str,
    prefix: &'static str,
) -> Result<String, String> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    let mut sockets = Vec::new();
    for (user, chunk) in names.chunks(PER_CLIENT).enumerate() {
        sockets.push(client(addr, user, chunk).await?);
    }
    drop(nats); // SIGKILL
    let (_nats, _) = start_nats_on(dir, port);
    let restarted = Instant::now();
    let delivered = std::rc::Rc::new(std::cell::RefCell::new(HashSet::new()));
    for socket in sockets {
        let delivered = delivered.clone();
        actix_rt::spawn(async move {
            let mut socket = socket;
            while let Some(Ok(frame)) = socket.next().await {
                if let awc::ws::Frame::Text(text) = frame {
                    for line in String::from_utf8_lossy(&text).split('\n') {
                        let key = format!("\"channel\":\"{prefix}");
                        if let Some(at) = line.find(&key) {
                            let rest = &line[at + 11..];
                            if let Some(end) = rest.find('"') {
                                delivered.borrow_mut().insert(rest[..end].to_owned());
                            }
                        }
                    }
                }
            }
        });
    }
    let http = awc::Client::new();
    let mut first_ok: Option<Duration> = None;
    let deadline = restarted + Duration::from_secs(60);
    while delivered.borrow().len() < count {
        if Instant::now() > deadline {
            return Err(format!("only {} of {count} channels delivered within 60 s", delivered.borrow().len()));
        }
        let pending: Vec<String> = names.iter().filter(|n| !delivered.borrow().contains(*n)).cloned().collect();
        for name in pending {
            let response = http
                .post(format!("http://{addr}/api/publish"))
                .insert_header(("X-API-Key", API_KEY))
                .send_body(format!("{{\"channel\":\"{name}\",\"data\":1}}"))
                .await;
            let ok = match response {
                Ok(mut r) => r.body().await.map(|b| b.starts_with(b"{\"result\"")).unwrap_or(false),
                Err(_) => false,
            };
            if ok && first_ok.is_none() {
                first_ok = Some(restarted.elapsed());
            }
            if !ok {
                tokio::time::sleep(Duration::from_millis(20)).await;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = restarted.elapsed();
    Ok(format!(
        "channels: {count}\nfirst accepted publish after the restart: {:.0} ms\nall {count} channels delivering again: {:.0} ms",
        first_ok.unwrap_or_default().as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3
    ))
}
