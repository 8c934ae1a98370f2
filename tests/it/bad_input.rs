use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[actix_web::test]
async fn malformed_json_closes_with_3501_and_others_keep_working() {
    let node = TestNode::start().await;
    let mut good = node.connect_as("1").await;
    good.request(2, "subscribe", json!({"channel": "news"})).await;
    let mut bad = node.connect_as("2").await;
    bad.send("{not json").await;
    assert_eq!(bad.closed().await, (3501, "bad request".to_owned()));
    node.api_ok("publish", json!({"channel": "news", "data": 1})).await;
    assert_eq!(good.publication("news").await["data"], 1);
}

#[actix_web::test]
async fn empty_line_in_a_frame_closes_with_3501() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.send("{\"id\":2,\"ping\":{}}\n\n{\"id\":3,\"ping\":{}}").await;
    assert_eq!(client.closed().await.0, 3501);
}

#[actix_web::test]
async fn frame_over_message_size_limit_closes_with_1009() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    let big = format!("{{\"id\":2,\"publish\":{{\"channel\":\"news\",\"data\":\"{}\"}}}}", "x".repeat(70_000));
    client.send(&big).await;
    assert_eq!(client.closed().await.0, 1009);
}

#[actix_web::test]
async fn command_before_connect_closes_with_3501() {
    let node = TestNode::start().await;
    let mut client = node.socket().await;
    client.send(r#"{"id":1,"subscribe":{"channel":"news"}}"#).await;
    assert_eq!(client.closed().await, (3501, "bad request".to_owned()));
}

#[actix_web::test]
async fn unknown_command_closes_with_3501() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.send(r#"{"id":2,"teleport":{"to":"mars"}}"#).await;
    assert_eq!(client.closed().await.0, 3501);
}

#[actix_web::test]
async fn duplicate_connect_closes_with_3501() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.send(&json!({"id": 2, "connect": {"token": token(json!({"sub": "1"}))}}).to_string()).await;
    assert_eq!(client.closed().await.0, 3501);
}

#[actix_web::test]
async fn invalid_channel_names_get_107() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    for (id, channel) in [(2, "has space"), (3, "tab\tchar"), (4, "ünïcode")] {
        let reply = client.request(id, "subscribe", json!({"channel": channel})).await;
        assert_eq!(reply["error"]["code"], 107, "{channel}");
    }
    let long = "a".repeat(256);
    assert_eq!(client.request(5, "subscribe", json!({"channel": long})).await["error"]["code"], 107);
    client.send(r#"{"id":6,"subscribe":{"channel":""}}"#).await;
    assert_eq!(client.closed().await.0, 3501);
}

#[actix_web::test]
async fn bad_tokens_at_connect_get_their_codes() {
    let node = TestNode::start().await;
    let cases = [
        ("malformed", "not.a.token".to_owned()),
        ("wrong key", token_with(json!({"sub": "1"}), "other-secret")),
        // {"alg":"none"} header, {"sub":"1"} claims, empty signature.
        ("alg none", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIn0.".to_owned()),
    ];
    for (name, bad) in cases {
        let mut client = node.socket().await;
        client.send(&json!({"id": 1, "connect": {"token": bad}}).to_string()).await;
        assert_eq!(client.closed().await, (3500, "invalid token".to_owned()), "{name}");
    }
    let mut expired = node.socket().await;
    let reply = expired.request(1, "connect", json!({"token": token(json!({"sub": "1", "exp": now() - 10}))})).await;
    assert_eq!(reply["error"], json!({"code": 109, "message": "token expired"}));
    // Commands after a refused connect are not processed.
    expired.send(r#"{"id":2,"ping":{}}"#).await;
    let mut fine = node.connect_as("2").await;
    assert_eq!(fine.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}

#[actix_web::test]
async fn wrong_field_types_close_with_3501() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.send(r#"{"id":2,"subscribe":{"channel":"news","offset":"3"}}"#).await;
    assert_eq!(client.closed().await.0, 3501);
}

#[actix_web::test]
async fn api_bad_input_gets_centrifugo_answers() {
    let node = TestNode::start().await;
    assert_eq!(node.api_raw("publish", "{nope", Some(API_KEY)).await, (400, "Bad Request\n".to_owned()));
    assert_eq!(node.api_raw("publish", "", Some(API_KEY)).await.0, 400);
    assert_eq!(node.api_raw("publish", r#"{"channel": 1}"#, Some(API_KEY)).await.0, 400);
    let (status, body) = node.api("publish", json!({"data": {}})).await;
    assert_eq!((status, body.as_str()), (200, r#"{"error":{"code":107,"message":"bad request"}}"#));
    let (status, body) = node.api("publish", json!({"channel": "news"})).await;
    assert_eq!((status, body.as_str()), (200, r#"{"error":{"code":107,"message":"bad request"}}"#));
    let (status, body) = node.api("publish", json!({"channel": "nope:x", "data": 1})).await;
    assert_eq!((status, body.as_str()), (200, r#"{"error":{"code":102,"message":"unknown channel"}}"#));
    assert_eq!(node.api_raw("publish", "{}", Some("wrong")).await, (401, String::new()));
    assert_eq!(node.api_raw("publish", "{}", None).await, (401, String::new()));
    assert_eq!(node.api_raw("teleport", "{}", Some(API_KEY)).await, (404, "404 page not found\n".to_owned()));
    assert_eq!(node.api_raw("teleport", "{}", None).await.0, 404, "an unknown method is 404 before the key check");
    assert_eq!(node.api_raw("publish/extra", "{}", Some(API_KEY)).await.0, 404);
    let (status, body) = node.api("publish", json!({"channel": "news", "b64data": "%%%"})).await;
    assert_eq!((status, body.as_str()), (200, r#"{"error":{"code":107,"message":"bad request"}}"#));
}

#[actix_web::test]
async fn api_error_transport_mode_maps_codes_to_statuses() {
    let node = TestNode::start().await;
    let mut response = awc::Client::new()
        .post(format!("http://{}/api/publish", node.addr))
        .insert_header(("X-API-Key", API_KEY))
        .insert_header(("X-Centrifugo-Error-Mode", "transport"))
        .send_body(r#"{"channel":"nope:x","data":1}"#)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body = response.body().await.unwrap();
    assert_eq!(&body[..], br#"{"code":102,"message":"unknown channel"}"#);
}

#[actix_web::test]
async fn subscriber_that_reads_nothing_is_closed_with_3008_and_others_get_everything() {
    let node = TestNode::start_with(|s| {
        s.client.queue_max_size = 256 * 1024;
        // Long enough that the budget, not the write deadline, ends the stuck connection.
        s.websocket.write_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stuck = node.connect_as("stuck").await;
    stuck.request(2, "subscribe", json!({"channel": "flood"})).await;
    let mut reader = node.connect_as("reader").await;
    reader.request(2, "subscribe", json!({"channel": "flood"})).await;
    let chunk = "x".repeat(100_000);
    let total = 120; // 12 MB: far more than socket buffers plus the 256 KiB budget
    let mut received = 0;
    for n in 0..total {
        node.api_ok("publish", json!({"channel": "flood", "data": {"n": n, "pad": chunk}})).await;
        // The reader keeps up while the stuck client reads nothing.
        while received <= n {
            assert_eq!(reader.publication("flood").await["data"]["n"], received);
            received += 1;
        }
    }
    // Now drain the stuck client: it got a prefix of the stream, then 3008.
    let mut seen = 0;
    let code = loop {
        match stuck.next().await {
            Event::Line(line) if line["push"]["pub"].is_object() => seen += 1,
            Event::Line(_) => {}
            Event::Closed(code, reason) => break (code, reason),
        }
    };
    assert_eq!(code, (3008, "slow".to_owned()));
    assert!(seen < total, "the stuck client must not have received everything ({seen})");
}

#[actix_web::test]
async fn client_whose_socket_takes_nothing_for_write_timeout_is_dropped() {
    let node = TestNode::start_with(|s| {
        // A budget the flood never reaches: only the write deadline can end the connection.
        s.client.queue_max_size = 256 * 1024 * 1024;
        s.websocket.write_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stuck = node.connect_as("stuck").await;
    stuck.request(2, "subscribe", json!({"channel": "flood"})).await;
    let chunk = "x".repeat(100_000);
    let total = 300; // 30 MB: more than loopback socket buffers hold
    for n in 0..total {
        node.api_ok("publish", json!({"channel": "flood", "data": {"n": n, "pad": chunk}})).await;
    }
    let clients = || async { node.api_ok("info", json!({})).await["nodes"][0]["num_clients"].as_u64() };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while clients().await != Some(0) {
        assert!(std::time::Instant::now() < deadline, "the stuck client was never dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It got a prefix of the stream, then the connection ended (no room was left for a close frame).
    let mut seen = 0;
    loop {
        match stuck.next().await {
            Event::Line(line) if line["push"]["pub"].is_object() => seen += 1,
            Event::Line(_) => {}
            Event::Closed(..) => break,
        }
    }
    assert!(seen < total, "the stuck client must not have received everything ({seen})");
    let mut other = node.connect_as("other").await;
    assert_eq!(other.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}

#[actix_web::test]
async fn user_connection_limit_closes_the_extra_connection_with_3504() {
    let node = TestNode::start_with(|s| s.client.user_connection_limit = 1).await;
    let mut first = node.connect_as("u").await;
    let mut second = node.socket().await;
    second.send(&json!({"id": 1, "connect": {"token": token(json!({"sub": "u"}))}}).to_string()).await;
    assert_eq!(second.closed().await, (3504, "connection limit".to_owned()));
    assert_eq!(first.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
    let other_user = node.connect_as("v").await;
    assert!(!other_user.id.is_empty());
}

#[actix_web::test]
async fn node_connection_limit_refuses_the_upgrade_with_503() {
    let node = TestNode::start_with(|s| s.client.connection_limit = 1).await;
    let mut first = node.connect_as("a").await;
    let refused = awc::Client::new().ws(node.ws_url()).connect().await;
    assert!(matches!(refused, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 503));
    assert_eq!(first.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}

#[actix_web::test]
async fn every_api_method_without_its_required_field_gets_107() {
    let node = TestNode::start().await;
    for method in
        ["publish", "broadcast", "subscribe", "presence", "presence_stats", "history", "history_remove", "rpc"]
    {
        let (status, body) = node.api(method, json!({})).await;
        assert_eq!((status, body.as_str()), (200, r#"{"error":{"code":107,"message":"bad request"}}"#), "{method}");
    }
    // Methods whose fields are all optional succeed on an empty request.
    for method in ["unsubscribe", "disconnect", "refresh", "channels", "info"] {
        let (status, body) = node.api(method, json!({})).await;
        assert_eq!(status, 200, "{method}");
        assert!(body.starts_with("{\"result\":"), "{method}: {body}");
    }
}

#[actix_web::test]
async fn api_body_over_the_limit_is_refused_with_413() {
    let node = TestNode::start().await;
    let huge = format!("{{\"channel\":\"news\",\"data\":\"{}\"}}", "x".repeat(10 * 1024 * 1024));
    assert_eq!(node.api_raw("publish", &huge, Some(API_KEY)).await.0, 413);
    let (status, _) = node.api("publish", json!({"channel": "news", "data": 1})).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn subscriptions_over_channel_limit_get_106() {
    let node = TestNode::start_with(|s| s.client.channel_limit = 2).await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "a"})).await;
    client.request(3, "subscribe", json!({"channel": "b"})).await;
    let third = client.request(4, "subscribe", json!({"channel": "c"})).await;
    assert_eq!(third["error"], json!({"code": 106, "message": "limit exceeded"}));
}

#[actix_web::test]
async fn connection_rate_limit_refuses_bursts_with_503() {
    let node = TestNode::start_with(|s| s.client.connection_rate_limit = 1).await;
    let mut refused = 0;
    // At most one connection per one-second window is admitted; five quick attempts span at most
    // two windows, so at least three are refused.
    let mut kept = Vec::new();
    for _ in 0..5 {
        match awc::Client::new().ws(node.ws_url()).connect().await {
            Ok(connection) => kept.push(connection),
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 503 => refused += 1,
            Err(other) => panic!("unexpected handshake error {other:?}"),
        }
    }
    assert!(refused >= 3, "only {refused} of 5 refused");
}

#[actix_web::test]
async fn unknown_namespace_in_token_channels_refuses_connect_with_102() {
    let node = TestNode::start().await;
    let mut client = node.socket().await;
    let reply =
        client.request(1, "connect", json!({"token": token(json!({"sub": "1", "channels": ["nope:x"]}))})).await;
    assert_eq!(reply["error"]["code"], 102);
}

/// Sends `request` on a fresh TCP connection and returns everything the node answers until it
/// closes the connection or `until` is satisfied (bounded by [`WAIT`]).
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8], until: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.write_all(request).await.expect("write request");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !until(&answer) {
        match tokio::time::timeout(WAIT, socket.read(&mut buffer)).await.expect("node answered in time") {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    answer
}

fn upgrade_request(path: &str, key: bool) -> String {
    let key = if key { "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" } else { "" };
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n{key}\r\n"
    )
}

fn status_of(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer).lines().next().unwrap_or_default().to_owned()
}

#[actix_web::test]
async fn bad_handshakes_get_http_statuses_and_the_node_keeps_serving() {
    let node = TestNode::start().await;
    let closed = |_: &[u8]| false;
    let wrong_path = raw_exchange(node.addr, upgrade_request("/connection/nope", true).as_bytes(), closed).await;
    assert_eq!(status_of(&wrong_path), "HTTP/1.1 404 Not Found");
    let no_key = raw_exchange(node.addr, upgrade_request("/connection/websocket", false).as_bytes(), closed).await;
    assert!(status_of(&no_key).starts_with("HTTP/1.1 400 "), "{}", status_of(&no_key));
    let mut plain = awc::Client::new().get(node.ws_url().replace("ws://", "http://")).send().await.expect("get");
    assert_eq!(plain.status().as_u16(), 400);
    assert!(String::from_utf8_lossy(&plain.body().await.expect("body")).contains("WebSocket upgrade"));
    let mut client = node.connect_as("after").await;
    assert_eq!(client.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}

/// Oversized upgrade requests: a 1 MiB header (Go's default limit, Centrifugo's) and more
/// headers than actix-http parses (96) get 431 before any WebSocket exists, the head is not
/// buffered past actix-http's bound, and the node keeps serving.
#[actix_web::test]
async fn oversized_upgrade_headers_are_refused_and_the_node_keeps_serving() {
    let node = TestNode::start().await;
    let closed = |answer: &[u8]| answer.windows(4).any(|w| w == b"\r\n\r\n");
    let with_headers = |extra: &str| {
        upgrade_request("/connection/websocket", true).replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1)
    };
    let long_value = with_headers(&format!("X-Filler: {}\r\n", "a".repeat(1024 * 1024)));
    let answer = raw_exchange(node.addr, long_value.as_bytes(), closed).await;
    assert_eq!(status_of(&answer), "HTTP/1.1 431 Request Header Fields Too Large");
    let many: String = (0..200).map(|n| format!("X-Header-{n}: {n}\r\n")).collect();
    let answer = raw_exchange(node.addr, with_headers(&many).as_bytes(), closed).await;
    assert_eq!(status_of(&answer), "HTTP/1.1 431 Request Header Fields Too Large");
    let mut client = node.connect_as("after").await;
    assert_eq!(client.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}

#[actix_web::test]
async fn a_command_sent_right_behind_the_handshake_is_answered() {
    let node = TestNode::start().await;
    let connect = json!({"id": 1, "connect": {"token": token(json!({"sub": "eager"}))}}).to_string();
    let length = u16::try_from(connect.len()).expect("a short frame");
    let mut request = upgrade_request("/connection/websocket", true).into_bytes();
    // A masked text frame (16-bit length) with an all-zero mask: the payload goes as is.
    request.extend_from_slice(&[0x81, 0x80 | 126]);
    request.extend_from_slice(&length.to_be_bytes());
    request.extend_from_slice(&[0, 0, 0, 0]);
    request.extend_from_slice(connect.as_bytes());
    let has_reply = |answer: &[u8]| String::from_utf8_lossy(answer).contains(r#""client":"#);
    let answer = raw_exchange(node.addr, &request, has_reply).await;
    assert_eq!(status_of(&answer), "HTTP/1.1 101 Switching Protocols");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains(r#"{"id":1,"connect":{"client":"#), "{text}");
}
