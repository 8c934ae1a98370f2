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
