//! `uni_websocket`: a plain WebSocket that only receives (Centrifugo's unidirectional client
//! protocol). The connect request is the first message or `cf_connect`; the connect result and
//! every push arrive without the Reply wrapper; errors are disconnects.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

async fn uni_node() -> TestNode {
    TestNode::start_with(|s| {
        s.uni_websocket.enabled = true;
        s.client.ping_interval = Duration::from_secs(2);
        s.client.pong_timeout = Duration::from_secs(1);
    })
    .await
}

/// The next text frame as JSON, skipping WebSocket pings.
async fn next_json(socket: &mut RawSocket) -> Value {
    loop {
        match socket.next_frame().await {
            Some((TEXT, payload)) => return serde_json::from_slice(&payload).expect("JSON text frame"),
            Some((PING, _)) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

#[actix_web::test]
async fn the_first_message_connects_and_pushes_arrive_without_the_reply_wrapper() {
    let node = uni_node().await;
    let (mut socket, head) = RawSocket::open_path(&node, "/connection/uni_websocket", "").await;
    assert!(!head.to_ascii_lowercase().contains("sec-websocket-protocol"), "{head}");
    let claims = json!({"sub": "u1", "channels": ["chat:uni"], "info": {"name": "U"}});
    socket.send_frame(true, TEXT, json!({"token": token(claims), "name": "plain"}).to_string().as_bytes()).await;
    let connect = next_json(&mut socket).await;
    assert!(connect["connect"]["client"].is_string(), "{connect}");
    assert!(connect.get("id").is_none() && connect.get("push").is_none(), "{connect}");
    assert_eq!(connect["connect"]["ping"], 2);
    assert!(connect["connect"].get("pong").is_none(), "unidirectional clients never pong: {connect}");
    assert_eq!(connect["connect"]["subs"]["chat:uni"]["recoverable"], true, "{connect}");

    node.api_ok("publish", json!({"channel": "chat:uni", "data": {"n": 1}})).await;
    let publication = next_json(&mut socket).await;
    assert_eq!(publication, json!({"channel": "chat:uni", "pub": {"data": {"n": 1}, "offset": 1}}));

    // Later messages are ignored; pushes keep coming.
    socket.send_frame(true, TEXT, br#"{"id":2,"subscribe":{"channel":"chat:other"}}"#).await;
    node.api_ok("publish", json!({"channel": "chat:uni", "data": {"n": 2}})).await;
    assert_eq!(next_json(&mut socket).await["pub"]["data"], json!({"n": 2}));

    // Server pings: `{}` plus a WebSocket ping frame, which the client answers.
    let ping = loop {
        match socket.next_frame().await {
            Some((PING, _)) => {
                socket.send_frame(true, PONG, &[]).await;
            }
            Some((TEXT, payload)) => break payload,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(ping, b"{}");

    node.api_ok("disconnect", json!({"user": "u1", "disconnect": {"code": 4000, "reason": "bye"}})).await;
    let disconnect = next_json(&mut socket).await;
    assert_eq!(disconnect, json!({"disconnect": {"code": 4000, "reason": "bye"}}));
    assert_eq!(socket.close_code().await, Some(4000));
}

#[actix_web::test]
async fn cf_connect_in_the_query_connects_without_a_message() {
    let node = uni_node().await;
    let connect = json!({"token": token(json!({"sub": "u2", "channels": ["news"]}))}).to_string();
    let query: String = url_encode(&connect);
    let (mut socket, _) =
        RawSocket::open_path(&node, &format!("/connection/uni_websocket?cf_connect={query}"), "").await;
    let reply = next_json(&mut socket).await;
    assert!(reply["connect"]["subs"]["news"].is_object(), "{reply}");
    node.api_ok("publish", json!({"channel": "news", "data": "hi"})).await;
    assert_eq!(next_json(&mut socket).await, json!({"channel": "news", "pub": {"data": "hi"}}));
}

#[actix_web::test]
async fn bad_connect_requests_are_disconnects_with_their_codes() {
    let node = uni_node().await;
    let bad_query = raw_get(&node, "/connection/uni_websocket?cf_connect=%7Bnot-json").await;
    assert!(bad_query.starts_with("HTTP/1.1 400 "), "{bad_query}");

    let cases = [
        ("not JSON".to_owned(), 3501, "bad request"),
        (json!({"token": "not.a.token"}).to_string(), 3500, "invalid token"),
        (json!({"token": token(json!({"sub": "x", "exp": now() - 10}))}).to_string(), 3005, "connection expired"),
    ];
    for (message, code, reason) in cases {
        let (mut socket, _) = RawSocket::open_path(&node, "/connection/uni_websocket", "").await;
        socket.send_frame(true, TEXT, message.as_bytes()).await;
        let disconnect = next_json(&mut socket).await;
        assert_eq!(disconnect, json!({"disconnect": {"code": code, "reason": reason}}), "{message}");
        assert_eq!(socket.close_code().await, Some(code), "{message}");
    }
}

#[actix_web::test]
async fn the_endpoint_is_off_unless_enabled() {
    let node = TestNode::start().await;
    let answer = raw_get(&node, "/connection/uni_websocket").await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
}

/// Percent-encodes everything but unreserved characters.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An upgrade request to `target`; the status line of the answer.
async fn raw_get(node: &TestNode, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(node.addr).await.expect("connect");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = vec![0; 1024];
    let n = tokio::time::timeout(WAIT, stream.read(&mut answer)).await.expect("answer in time").expect("read");
    String::from_utf8_lossy(&answer[..n]).into_owned()
}
