//! Shared by the benchmark binaries: start real `gyre` and `nats-server` processes on loopback,
//! read a process's RSS, open a connected+subscribed WebSocket. Processes are killed on drop.

#![allow(dead_code)] // each bench uses a subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};

pub const SECRET: &str = "bench-secret";
pub const API_KEY: &str = "bench-key";

/// The first numeric command-line argument, or `default`.
pub fn arg(default: usize) -> usize {
    std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(default)
}

/// Prints a benchmark's report, or its error and exits non-zero.
pub fn report(outcome: Result<String, String>) {
    match outcome {
        Ok(report) => println!("{report}"),
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            std::process::exit(1);
        }
    }
}

/// A child process, killed on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes a gyre config (HMAC secret, API key, open channels; cluster mode when `nats` is set).
pub fn write_config(dir: &Path, name: &str, nats: Option<&str>) -> PathBuf {
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

/// Turns on `http_server.tls` in a config written by [`write_config`], with a self-signed
/// certificate for localhost written beside it; returns a client that trusts it.
pub fn enable_tls(config: &Path) -> awc::Client {
    use rustls::pki_types::pem::PemObject;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let dir = config.parent().expect("config dir");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, certified.cert.pem()).expect("write certificate");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let text = std::fs::read_to_string(config).expect("read config");
    let tls = format!(
        r#"{{"http_server":{{"tls":{{"enabled":true,"cert_pem":"{}","key_pem":"{}"}}}},"#,
        cert.display(),
        key.display()
    );
    std::fs::write(config, text.replacen('{', &tls, 1)).expect("write config");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(certified.cert.pem().as_bytes()).expect("PEM"))
        .expect("root");
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    // No pool limit: every WebSocket holds its connection.
    awc::Client::builder().connector(awc::Connector::new().limit(0).rustls_0_23(std::sync::Arc::new(tls))).finish()
}

/// Adds the namespace `hist` (history size 10, ttl 300 s, open to clients) to a config written
/// by [`write_config`]: in cluster mode its channels keep history in JetStream.
pub fn add_history_namespace(config: &Path) {
    let text = std::fs::read_to_string(config).expect("read config");
    let text = text.replace(
        r#""without_namespace":{"allow_subscribe_for_client":true}"#,
        r#""without_namespace":{"allow_subscribe_for_client":true},"namespaces":[{"name":"hist","history_size":10,"history_ttl":"300s","allow_subscribe_for_client":true}]"#,
    );
    std::fs::write(config, text).expect("write config");
}

/// Starts the release `gyre` binary on a free port; returns it and its `host:port`. With
/// `GYRE_WRAPPER` set (e.g. `valgrind --tool=massif`), runs it under that command.
pub fn start_gyre(gyre_bin: &str, config: &Path) -> (Proc, String) {
    let wrapper = std::env::var("GYRE_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(gyre_bin);
            command
        }
        None => Command::new(gyre_bin),
    };
    let mut child = command
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

/// Starts `nats-server` with JetStream on a free port; returns it and its URL.
pub fn start_nats(dir: &Path) -> (Proc, String) {
    start_nats_on(dir, "-1")
}

/// Starts `nats-server` with JetStream on `port` ("-1" = any free port) and `dir` as its store.
pub fn start_nats_on(dir: &Path, port: &str) -> (Proc, String) {
    start_nats_with(dir, &["-p", port])
}

/// Starts `nats-server` with JetStream and its monitoring endpoint on free ports; returns it,
/// its URL and the monitoring base URL (`/connz`, `/jsz`).
pub fn start_nats_monitored(dir: &Path) -> (Proc, String, String) {
    let (nats, url) = start_nats_with(dir, &["-p", "-1", "-m", "-1"]);
    let ports = dir.join(format!("nats-server_{}.ports", nats.pid()));
    let text = std::fs::read_to_string(ports).expect("ports file");
    let value: serde_json::Value = serde_json::from_str(&text).expect("ports json");
    let monitoring = value["monitoring"][0].as_str().expect("monitoring url").to_owned();
    (nats, url, monitoring)
}

fn start_nats_with(dir: &Path, ports: &[&str]) -> (Proc, String) {
    let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
    let child = Command::new(bin)
        .args(["-a", "127.0.0.1"])
        .args(ports)
        .args(["-js", "--ports_file_dir"])
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
        let url = std::fs::read_to_string(&ports)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|value| value["nats"][0].as_str().map(str::to_owned));
        if let Some(url) = url {
            break url;
        }
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    (Proc(child), url)
}

/// With `MASSIF_SNAPSHOTS=<prefix>` (and gyre under `GYRE_WRAPPER="valgrind --tool=massif"`),
/// writes a detailed heap snapshot of the process to `<prefix>.<name>` through `vgdb`.
pub fn heap_snapshot(pid: u32, name: &str) {
    let Ok(prefix) = std::env::var("MASSIF_SNAPSHOTS") else { return };
    let file = format!("{prefix}.{name}");
    let status = Command::new("vgdb").arg(format!("--pid={pid}")).args(["detailed_snapshot", &file]).status();
    match status {
        Ok(status) if status.success() => eprintln!("heap snapshot: {file}"),
        other => eprintln!("heap snapshot {file} failed: {other:?}"),
    }
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// A WebSocket that completed `connect` as `user` and `subscribe` to `channel`.
pub async fn subscriber(addr: &str, user: &str, channel: &str) -> Result<Socket, String> {
    subscriber_over(&awc::Client::new(), &format!("ws://{addr}/connection/websocket"), user, channel).await
}

/// [`subscriber`] with a given client (e.g. one trusting a test CA) and URL (e.g. `wss://`).
pub async fn subscriber_over(client: &awc::Client, url: &str, user: &str, channel: &str) -> Result<Socket, String> {
    let (_, mut socket) = client.ws(url).connect().await.map_err(|e| e.to_string())?;
    let token =
        encode(&Header::default(), &serde_json::json!({"sub": user}), &EncodingKey::from_secret(SECRET.as_bytes()))
            .map_err(|e| e.to_string())?;
    let frame = format!(
        "{{\"id\":1,\"connect\":{{\"token\":\"{token}\"}}}}\n{{\"id\":2,\"subscribe\":{{\"channel\":\"{channel}\"}}}}"
    );
    socket.send(awc::ws::Message::Text(frame.into())).await.map_err(|e| e.to_string())?;
    let mut replies = 0;
    while replies < 2 {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(text)))) => {
                let text = String::from_utf8_lossy(&text);
                if text.contains("\"error\"") {
                    return Err(format!("server refused: {text}"));
                }
                replies += text.split('\n').count();
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("connect+subscribe of {user} failed: {other:?}")),
        }
    }
    Ok(socket)
}
