//! CI smoke test: the harness builds, tiny `fanout`, `idle`, `connect-rate` and
//! `publish-latency` runs (the last two through `proxy-backend`) against a real gyre node finish,
//! and their JSON reports have the expected fields with non-zero deliveries; a tiny `storm` on
//! three nodes and a nats-server of its own recovers every client of the killed node without a
//! lost or repeated publication. No timing thresholds. Needs a built gyre binary: `GYRE_BIN`,
//! else target/{debug,release}/gyre; and `nats-server` on the PATH.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CONFIG: &str = r#"{"client":{"token":{"hmac_secret_key":"bench-secret"}},"http_api":{"key":"bench-key"},
 "channel":{"without_namespace":{"allow_subscribe_for_client":true}},"log":{"level":"info"}}"#;

/// A gyre node on a free port, killed on drop.
struct Node {
    child: Child,
    addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gyre_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("GYRE_BIN") {
        return PathBuf::from(bin);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("gyre"))
        .find(|bin| bin.exists())
        .expect("no gyre binary: run `cargo build` first or set GYRE_BIN")
}

fn start_gyre(dir: &Path) -> Node {
    start_gyre_with(dir, CONFIG)
}

fn start_gyre_with(dir: &Path, config_text: &str) -> Node {
    start_named_gyre(dir, config_text, "")
}

/// A node named `name` (empty: the default name).
fn start_named_gyre(dir: &Path, config_text: &str, name: &str) -> Node {
    let config = dir.join("gyre.json");
    std::fs::write(&config, config_text).expect("write config");
    let mut command = Command::new(gyre_bin());
    if !name.is_empty() {
        command.env("CENTRIFUGO_NODE_NAME", name);
    }
    let mut child = command
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--port", "0", "--address", "127.0.0.1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start gyre");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("gyre printed its address").expect("read gyre stdout");
        if let Some(at) = line.find("addr=").filter(|_| line.contains("listening")) {
            break line[at + 5..].split_whitespace().next().unwrap_or_default().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Node { child, addr }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gyre-bench-smoke-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs gyre-bench against `node` and returns its JSON report.
fn bench(node: &Node, dir: &Path, scenario: &str, args: &[&str]) -> serde_json::Value {
    let status = Command::new(env!("CARGO_BIN_EXE_gyre-bench"))
        .arg(scenario)
        .args(["--addr", &node.addr, "--server-pid", &node.child.id().to_string(), "--label", "gyre", "--quiet"])
        .arg("--out")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("run gyre-bench");
    assert!(status.success(), "gyre-bench {scenario} failed: {status}");
    let text = std::fs::read_to_string(dir.join(format!("gyre-{scenario}.json"))).expect("report written");
    serde_json::from_str(&text).expect("report is JSON")
}

#[test]
fn fanout_delivers_and_reports() {
    let dir = scratch_dir("fanout");
    let node = start_gyre(&dir);
    let args = ["--subscribers", "50", "--rates", "50", "--step-secs", "2", "--warmup-secs", "0.5"];
    let report = bench(&node, &dir, "fanout", &args);
    assert_eq!(report["scenario"], "fanout");
    assert_eq!(report["ramps"][0]["connections"], 50);
    assert_eq!(report["totals"]["connect_failed"], 0);
    let step = &report["steps"][0];
    assert!(step["deliveries"].as_u64().is_some_and(|d| d > 0), "no deliveries: {step}");
    assert!(step["publishes"].as_u64().is_some_and(|p| p > 0), "no publishes: {step}");
    for field in ["p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(step["latency"][field].is_number(), "latency.{field} missing: {step}");
    }
    assert!(step["server_cpu_us_per_delivery"].is_number(), "no server CPU figure: {step}");
    assert_eq!(step["saturated"], false, "50/s is reached: {step}");
    assert!(report["loss"]["expected"].as_u64().is_some_and(|e| e > 0));
    assert!(dir.join("gyre-fanout.md").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fanout_over_protobuf_delivers_every_publication() {
    let dir = scratch_dir("fanout-protobuf");
    let node = start_gyre(&dir);
    let args =
        ["--protocol", "v2pb", "--subscribers", "20", "--rates", "20", "--step-secs", "1", "--warmup-secs", "0.5"];
    let report = bench(&node, &dir, "fanout", &args);
    assert_eq!(report["totals"]["connect_failed"], 0, "{report}");
    let step = &report["steps"][0];
    assert!(step["deliveries"].as_u64().is_some_and(|d| d > 0), "no deliveries: {step}");
    assert_eq!(report["loss"]["lost"], 0, "{report}");
    assert_eq!(report["totals"]["decode_errors"], 0, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rate_the_node_cannot_reach_ends_on_time_as_saturated() {
    let dir = scratch_dir("saturated");
    let node = start_gyre(&dir);
    // Far beyond what a debug build on this box serves: the steps must still end on time.
    let args = ["--subscribers", "20", "--rates", "10000000,20000000", "--step-secs", "1", "--warmup-secs", "1"];
    let report = bench(&node, &dir, "fanout", &args);
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "stepping stops at the first saturated rate: {report}");
    assert_eq!(steps[0]["saturated"], true, "{report}");
    assert!(steps[0]["publishes"].as_u64().is_some_and(|p| p > 0 && p < 10_000_000), "{report}");
    assert!(report["notes"].to_string().contains("saturated"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_reports_memory_per_connection() {
    let dir = scratch_dir("idle");
    let node = start_gyre(&dir);
    let report = bench(&node, &dir, "idle", &["--conns", "50", "--hold-secs", "1", "--warmup-conns", "2"]);
    let idle = &report["idle"];
    assert_eq!(idle["connections"], 50, "{report}");
    assert!(idle["rss_per_conn_bytes"].is_number(), "no RSS figure: {idle}");
    assert!(idle["rss_after_hold_kib"].as_u64().is_some_and(|kib| kib > 0));
    assert!(report["ramps"][0]["rate_per_s"].as_f64().is_some_and(|r| r > 0.0));
    assert_eq!(report["totals"]["dropped"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `gyre-bench proxy-backend` on a free port, killed on drop; its address is in `addr`.
fn start_backend() -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gyre-bench"))
        .args(["proxy-backend", "--port", "0", "--max-duration", "300", "--quiet"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start proxy-backend");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next().expect("proxy-backend printed its address").expect("read its stdout");
    let addr = line.split("addr=").nth(1).expect("listening addr=").trim().to_owned();
    Node { child, addr }
}

/// A node whose connect proxy and `proxied` namespace's publish proxy call `backend`.
fn start_proxied_gyre(dir: &Path, backend: &Node) -> Node {
    let url = format!("http://{}", backend.addr);
    let config = format!(
        r#"{{"client":{{"token":{{"hmac_secret_key":"bench-secret"}},
             "proxy":{{"connect":{{"enabled":true,"endpoint":"{url}/connect","timeout":"5s"}}}}}},
           "http_api":{{"key":"bench-key"}},
           "channel":{{"proxy":{{"publish":{{"endpoint":"{url}/publish","timeout":"5s"}}}},
             "namespaces":[{{"name":"plain","allow_subscribe_for_client":true,"allow_publish_for_client":true}},
                           {{"name":"proxied","allow_subscribe_for_client":true,"publish_proxy_enabled":true}}]}},
           "log":{{"level":"info"}}}}"#
    );
    start_gyre_with(dir, &config)
}

#[test]
fn connect_rate_with_a_jwt_and_through_the_connect_proxy() {
    let dir = scratch_dir("connect-rate");
    let backend = start_backend();
    let node = start_proxied_gyre(&dir, &backend);
    let args =
        ["--auth", "jwt,tokenless", "--conns", "30", "--rounds", "2", "--warmup-conns", "2", "--settle-secs", "0.1"];
    let report = bench(&node, &dir, "connect-rate", &args);
    let ramps = report["ramps"].as_array().expect("ramps");
    let names: Vec<&str> = ramps.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["jwt #1", "tokenless #1", "jwt #2", "tokenless #2"], "{report}");
    for ramp in ramps {
        assert_eq!(ramp["connections"], 30, "{report}");
        assert!(ramp["rate_per_s"].as_f64().is_some_and(|r| r > 0.0), "{report}");
    }
    assert_eq!(report["totals"]["connect_failed"], 0, "{report}");
    assert!(report["summary"].as_str().is_some_and(|s| s.contains("| tokenless |")), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn publish_latency_with_and_without_the_publish_proxy() {
    let dir = scratch_dir("publish-latency");
    let backend = start_backend();
    let node = start_proxied_gyre(&dir, &backend);
    let args = ["--rate", "50", "--rounds", "1", "--step-secs", "1", "--warmup-secs", "0.2"];
    let report = bench(&node, &dir, "publish-latency", &args);
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{report}");
    for step in steps {
        assert!(step["publishes"].as_u64().is_some_and(|p| p > 0), "{report}");
        assert_eq!(step["publish_errors"], 0, "the proxied namespace allows publishing only via the proxy: {report}");
        assert!(step["api_latency"]["p50_ms"].is_number(), "{report}");
        assert!(step["deliveries"].as_u64().is_some_and(|d| d > 0), "{report}");
    }
    assert_eq!(report["loss"]["lost"], 0, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// Polls `done` every 50 ms for at most 15 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `nats-server -js` on free ports (client, monitoring), killed on drop.
fn start_nats(dir: &Path) -> (Node, u16) {
    let (port, monitor) = (free_port(), free_port());
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-m", &monitor.to_string(), "-js", "-sd"])
        .arg(dir.join("js"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server (is it installed?)");
    let nats = Node { child, addr: format!("127.0.0.1:{port}") };
    wait_for("nats-server accepts connections", || std::net::TcpStream::connect(&nats.addr).is_ok());
    (nats, monitor)
}

/// How many nodes `info` on `node` lists (0 when it does not answer).
fn nodes_listed(node: &Node) -> usize {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(&node.addr) else { return 0 };
    let request = "POST /api/info HTTP/1.0\r\nX-API-Key: bench-key\r\nContent-Length: 2\r\n\r\n{}";
    let mut response = String::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut response).is_err() {
        return 0;
    }
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let info: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    info["result"]["nodes"].as_array().map_or(0, Vec::len)
}

#[test]
fn storm_recovers_every_client_of_the_killed_node() {
    let dir = scratch_dir("storm");
    let (nats, monitor) = start_nats(&dir);
    let config = format!(
        r#"{{"client":{{"token":{{"hmac_secret_key":"bench-secret"}}}},"http_api":{{"key":"bench-key"}},
           "channel":{{"namespaces":[{{"name":"chat","history_size":100,"history_ttl":"300s",
             "force_recovery":true,"allow_subscribe_for_client":true}}]}},
           "broker":{{"enabled":true,"type":"nats","nats":{{"url":"nats://{}"}}}},"log":{{"level":"info"}}}}"#,
        nats.addr
    );
    let nodes: Vec<Node> = ["a", "b", "c"].iter().map(|name| start_named_gyre(&dir, &config, name)).collect();
    wait_for("node a lists three nodes", || nodes_listed(&nodes[0]) == 3);
    let addrs = nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>().join(",");
    let victim = nodes[2].child.id().to_string();
    let monitor = format!("127.0.0.1:{monitor}");
    // Affinity: the killed node's channels have no subscriber left, so recoveries read the store.
    let args = [
        "--nodes",
        &addrs,
        "--victim",
        "2",
        "--victim-pid",
        &victim,
        "--nats-monitor",
        &monitor,
        "--clients",
        "90",
        "--channels",
        "9",
        "--affinity",
        "--rate",
        "60",
        "--before-secs",
        "1",
        "--after-secs",
        "0.5",
        "--reconnect-min-ms",
        "0",
    ];
    let report = bench(&nodes[0], &dir, "storm", &args);
    let results = &report["results"];
    assert_eq!(results["victims"], 30, "{report}");
    assert_eq!(results["all_resubscribed"], true, "{report}");
    assert_eq!(results["recovered"], 30, "{report}");
    assert_eq!(results["not_recovered"], 0, "{report}");
    for field in ["gaps", "repeats", "behind_at_end"] {
        assert_eq!(results[field], 0, "{field}: {report}");
    }
    assert!(results["published"].as_u64().is_some_and(|p| p > 0), "{report}");
    assert!(results["jetstream_api_calls"].is_u64(), "{report}");
    drop(nodes);
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}
