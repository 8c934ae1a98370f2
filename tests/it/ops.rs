use std::time::Duration;

use serde_json::json;

use crate::support::*;

async fn get(node: &TestNode, path: &str) -> (u16, String) {
    let mut response = awc::Client::new().get(format!("http://{}{path}", node.addr)).send().await.expect("get");
    let body = response.body().await.expect("body");
    (response.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn health_is_an_empty_object_when_enabled() {
    let node = TestNode::start_with(|s| s.health.enabled = true).await;
    assert_eq!(get(&node, "/health").await, (200, "{}".to_owned()));
    let off = TestNode::start().await;
    assert_eq!(get(&off, "/health").await.0, 404);
}

#[actix_web::test]
async fn metrics_use_centrifugo_names_and_move_with_traffic() {
    let node = TestNode::start_with(|s| s.prometheus.enabled = true).await;
    let (status, before) = get(&node, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&before, "centrifugo_node_num_clients "), 0.0);
    let sent_before =
        metric(&before, "centrifugo_transport_messages_sent{channel_namespace=\"\",frame_type=\"push_publication\"");
    let mut client = node.connect_as("m").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    node.api_ok("publish", json!({"channel": "news", "data": 1})).await;
    client.publication("news").await;
    let (_, after) = get(&node, "/metrics").await;
    assert_eq!(metric(&after, "centrifugo_node_num_clients "), 1.0);
    assert_eq!(metric(&after, "centrifugo_node_num_subscriptions "), 1.0);
    let sent_after =
        metric(&after, "centrifugo_transport_messages_sent{channel_namespace=\"\",frame_type=\"push_publication\"");
    assert!(sent_after >= sent_before + 1.0, "{sent_before} -> {sent_after}");
    assert!(
        after.contains("centrifugo_api_command_duration_seconds_histogram_count{method=\"publish\",protocol=\"http\"}")
    );
}

#[actix_web::test]
async fn internal_port_serves_api_and_health_but_not_websocket() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let node = TestNode::start_with(|s| {
        s.http_server.internal_port = port.to_string();
        s.health.enabled = true;
    })
    .await;
    assert_eq!(get(&node, "/health").await.0, 404);
    assert_eq!(node.api_raw("info", "{}", Some(API_KEY)).await.0, 404);
    let internal = format!("http://127.0.0.1:{port}");
    let response = awc::Client::new().get(format!("{internal}/health")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = awc::Client::new()
        .post(format!("{internal}/api/info"))
        .insert_header(("X-API-Key", API_KEY))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let websocket = awc::Client::new().ws(format!("ws://127.0.0.1:{port}/connection/websocket")).connect().await;
    assert!(matches!(websocket, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 404));
}

/// Runs the gyre binary with `args` (config written from `config` when given) and returns its
/// exit code and stderr; fails if it has not exited within 20 s.
fn run_gyre(args: &[&str], config: Option<serde_json::Value>, dir: &std::path::Path) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gyre"));
    command.current_dir(dir).args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    if let Some(config) = config {
        let path = dir.join("gyre.json");
        std::fs::write(&path, config.to_string()).expect("write config");
        command.arg("--config").arg(path);
    }
    let mut child = command.spawn().expect("run gyre");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait for gyre").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("gyre did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("gyre output");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn start_up_failures_exit_1_with_a_clear_message_and_no_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("address").port();
    // Several workers: the registry runs on its own thread, started before the listeners were.
    let config = json!({"http_server": {"address": "127.0.0.1", "port": port, "workers": 2}});
    let (code, stderr) = run_gyre(&[], Some(config), dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}: Address already in use")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let nats_down = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nats_port = nats_down.local_addr().expect("address").port();
    drop(nats_down);
    let config = json!({
        "http_server": {"address": "127.0.0.1", "port": 0, "workers": 2},
        "broker": {"enabled": true, "type": "nats", "nats": {"url": format!("nats://127.0.0.1:{nats_port}")}},
    });
    let (code, stderr) = run_gyre(&[], Some(config), dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to NATS") && stderr.contains("broker.nats.url"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Plain `gyre` generates ./config.json first: here it cannot be written.
    let (code, stderr) = run_gyre(&[], None, std::path::Path::new("/proc/self"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot write config file ./config.json"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_http_requests_cannot_flood_the_log_with_errors() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("gyre.json");
    std::fs::write(&config, json!({"http_server": {"address": "127.0.0.1", "port": 0}}).to_string()).expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gyre"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run gyre");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("gyre printed its address").expect("read stdout");
        if let Some(at) = line.find("addr=").filter(|_| line.contains("listening")) {
            break line[at + 5..].split_whitespace().next().unwrap_or_default().to_owned();
        }
    };
    for _ in 0..40 {
        let mut socket = std::net::TcpStream::connect(&addr).expect("connect");
        socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        socket.write_all(b"GARBAGE\r\n\r\n").expect("send");
        let mut answer = String::new();
        let _ = socket.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let _ = child.kill();
    let _ = child.wait();
    let errors = lines.map_while(Result::ok).filter(|line| line.contains("ERROR")).count();
    assert!((1..=10).contains(&errors), "{errors} error lines for 40 malformed requests");
}

#[actix_web::test]
async fn swagger_serves_the_openapi_document_when_enabled() {
    let node = TestNode::start_with(|s| s.swagger.enabled = true).await;
    let (status, body) = get(&node, "/swagger/openapi.json").await;
    assert_eq!(status, 200);
    let document: serde_json::Value = serde_json::from_str(&body).expect("the document is JSON");
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    assert!(document["paths"]["/api/publish"]["post"].is_object());
    assert!(document["paths"]["/api/batch"]["post"].is_object());
    assert_eq!(get(&node, "/swagger/swagger.json").await, (200, body));
    let (status, page) = get(&node, "/swagger/").await;
    assert_eq!(status, 200);
    assert!(page.contains("openapi.json") && page.contains("/api/presence_stats"), "{page}");
    let client = awc::Client::builder().disable_redirects().finish();
    let response = client.get(format!("http://{}/swagger", node.addr)).send().await.expect("get");
    assert_eq!(response.status().as_u16(), 301);
    assert_eq!(response.headers().get("location").and_then(|v| v.to_str().ok()), Some("/swagger/"));
    assert_eq!(get(&node, "/swagger/nothing.json").await.0, 404);

    let off = TestNode::start().await;
    assert_eq!(get(&off, "/swagger/openapi.json").await.0, 404);
    assert_eq!(get(&off, "/swagger/").await.0, 404);
}

#[actix_web::test]
async fn swagger_follows_its_prefix_the_api_prefix_and_the_internal_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let node = TestNode::start_with(|s| {
        s.swagger.enabled = true;
        s.swagger.handler_prefix = "/docs/".into();
        s.http_api.handler_prefix = "/v1".into();
        s.http_server.internal_port = port.to_string();
    })
    .await;
    assert_eq!(get(&node, "/docs/openapi.json").await.0, 404, "not on the main port");
    let mut response =
        awc::Client::new().get(format!("http://127.0.0.1:{port}/docs/openapi.json")).send().await.expect("get");
    assert_eq!(response.status().as_u16(), 200);
    let document: serde_json::Value = serde_json::from_slice(&response.body().await.expect("body")).expect("JSON");
    assert!(document["paths"]["/v1/publish"].is_object(), "paths follow http_api.handler_prefix");
    assert!(document["paths"]["/v1"].is_object());
    assert!(document["paths"].get("/api/publish").is_none());
}
