//! `uni_websocket`: a plain WebSocket that only receives (Centrifugo's unidirectional client
//! protocol). The connect request is the first message or `cf_connect`; the connect result and
//! every push arrive without the Reply wrapper; errors are disconnects.

use std::time::Duration;

use serde_json::{json, Value};

use gyre::protocol::protobuf::wire;

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

    // chat: forces join/leave pushes, which a server-side subscription gets too (its own join).
    node.api_ok("publish", json!({"channel": "chat:uni", "data": {"n": 1}})).await;
    let publication = loop {
        let message = next_json(&mut socket).await;
        if message.get("join").is_none() {
            break message;
        }
    };
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

/// `uni_websocket.join_push_messages`: the pushes of one delivery batch (here a broadcast to
/// three channels) arrive as `\n`-joined lines of one frame.
#[actix_web::test]
async fn join_push_messages_joins_a_batch_into_one_frame() {
    let node = TestNode::start_with(|s| {
        s.uni_websocket.enabled = true;
        s.uni_websocket.join_push_messages = true;
    })
    .await;
    let claims = json!({"sub": "joiner", "channels": ["j1", "j2", "j3"]});
    let (mut socket, _) = RawSocket::open_path(&node, "/connection/uni_websocket", "").await;
    socket.send_frame(true, TEXT, json!({"token": token(claims)}).to_string().as_bytes()).await;
    assert!(next_json(&mut socket).await["connect"]["subs"]["j3"].is_object());
    node.api_ok("broadcast", json!({"channels": ["j1", "j2", "j3"], "data": {"all": true}})).await;
    let (opcode, frame) = socket.next_frame().await.expect("a frame");
    assert_eq!(opcode, TEXT);
    let lines: Vec<Value> = std::str::from_utf8(&frame)
        .expect("UTF-8")
        .split('\n')
        .map(|line| serde_json::from_str(line).expect("a JSON push per line"))
        .collect();
    let mut channels: Vec<&str> = lines.iter().map(|push| push["channel"].as_str().expect("channel")).collect();
    channels.sort();
    assert_eq!(channels, ["j1", "j2", "j3"], "{lines:?}");
}

/// `uni_websocket.disable_closing_handshake`: the disconnect message, then the socket closes
/// without a close frame.
#[actix_web::test]
async fn disable_closing_handshake_closes_without_a_close_frame() {
    let node = TestNode::start_with(|s| {
        s.uni_websocket.enabled = true;
        s.uni_websocket.disable_closing_handshake = true;
    })
    .await;
    let (mut socket, _) = RawSocket::open_path(&node, "/connection/uni_websocket", "").await;
    socket.send_frame(true, TEXT, json!({"token": token(json!({"sub": "quiet"}))}).to_string().as_bytes()).await;
    assert!(next_json(&mut socket).await["connect"].is_object());
    node.api_ok("disconnect", json!({"user": "quiet", "disconnect": {"code": 4000, "reason": "bye"}})).await;
    assert_eq!(next_json(&mut socket).await, json!({"disconnect": {"code": 4000, "reason": "bye"}}));
    assert_eq!(socket.next_frame().await, None, "the connection ends without a close frame");
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

/// Channels named in the connect request's `subs` become server-side subscriptions when the
/// client could subscribe to them itself (Centrifugo's way for a uni client to pick channels):
/// a namespace that allows it yes, one that does not or a private channel no; an unknown
/// namespace is a bad request (3501).
#[actix_web::test]
async fn channels_requested_in_subs_are_subscribed_when_the_client_may_subscribe_itself() {
    let node = uni_node().await;
    let subs = json!({"chat:picked": {}, "priv:secret": {}, "$chat:private": {}, "news-from-token": {}});
    let claims = json!({"sub": "picker", "channels": ["news-from-token"]});
    let (mut socket, _) = RawSocket::open_path(&node, "/connection/uni_websocket", "").await;
    socket.send_frame(true, TEXT, json!({"token": token(claims), "subs": subs}).to_string().as_bytes()).await;
    let connect = next_json(&mut socket).await;
    let mut granted: Vec<&String> = connect["connect"]["subs"].as_object().expect("subs").keys().collect();
    granted.sort();
    assert_eq!(granted, ["chat:picked", "news-from-token"], "{connect}");
    node.api_ok("publish", json!({"channel": "chat:picked", "data": 1})).await;
    assert_eq!(next_json(&mut socket).await["channel"], "chat:picked");

    let (mut socket, _) = RawSocket::open_path(&node, "/connection/uni_websocket", "").await;
    let request = json!({"token": token(json!({"sub": "picker"})), "subs": {"nope:room": {}}});
    socket.send_frame(true, TEXT, request.to_string().as_bytes()).await;
    assert_eq!(next_json(&mut socket).await, json!({"disconnect": {"code": 3501, "reason": "bad request"}}));
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

/// A node with `uni_sse` and `uni_http_stream` on.
async fn uni_http_node() -> TestNode {
    TestNode::start_with(|s| {
        s.uni_sse.enabled = true;
        s.uni_http_stream.enabled = true;
        s.uni_http_stream.max_request_body_size = 1024;
    })
    .await
}

/// Reads the streamed body until `count` complete messages (SSE events or lines) have come.
struct BodyReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>>>>,
    buffer: String,
    separator: &'static str,
}

impl BodyReader {
    /// The next message that is not a join or leave push.
    async fn next_skipping_joins(&mut self) -> Option<Value> {
        loop {
            let message = self.next().await?;
            if message.get("join").is_none() && message.get("leave").is_none() {
                return Some(message);
            }
        }
    }

    /// The next message as JSON (`data: ` stripped for SSE); `None` when the body ended.
    async fn next(&mut self) -> Option<Value> {
        use futures_util::StreamExt;
        loop {
            let trimmed = self.buffer.trim_start_matches(['\r', '\n']).to_owned();
            if let Some(at) = trimmed.find(self.separator) {
                let message = trimmed[..at].trim_start_matches("data: ").to_owned();
                self.buffer = trimmed[at + self.separator.len()..].to_owned();
                return Some(serde_json::from_str(&message).expect("a JSON message"));
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next()).await.expect("body in time")?;
            self.buffer.push_str(std::str::from_utf8(&chunk.expect("chunk")).expect("UTF-8"));
        }
    }
}

#[actix_web::test]
async fn uni_http_stream_and_uni_sse_stream_the_connect_push_and_publications() {
    let node = uni_http_node().await;
    let connect = json!({"token": token(json!({"sub": "h", "channels": ["chat:uh"]}))});
    let response = awc::Client::new()
        .post(format!("http://{}/connection/uni_http_stream", node.addr))
        .send_body(connect.to_string())
        .await
        .expect("uni_http_stream");
    assert_eq!(response.status().as_u16(), 200);
    let mut lines = BodyReader { body: Box::pin(response), buffer: String::new(), separator: "\n" };
    assert!(lines.next().await.expect("connect")["connect"]["subs"]["chat:uh"].is_object());

    let query = url_encode(&json!({"token": token(json!({"sub": "s", "channels": ["chat:uh"]}))}).to_string());
    let response = awc::Client::new()
        .get(format!("http://{}/connection/uni_sse?cf_connect={query}", node.addr))
        .send()
        .await
        .expect("uni_sse");
    assert_eq!(
        response.headers().get("content-type").map(|v| v.to_str().unwrap()),
        Some("text/event-stream; charset=utf-8")
    );
    // Proxies are told not to buffer or cache the stream (nginx honours X-Accel-Buffering).
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
    assert!(header("cache-control").is_some_and(|v| v.contains("no-cache") && v.contains("no-store")));
    let mut events = BodyReader { body: Box::pin(response), buffer: String::new(), separator: "\n\n" };
    assert!(events.next().await.expect("connect")["connect"]["client"].is_string());

    node.api_ok("publish", json!({"channel": "chat:uh", "data": {"n": 1}})).await;
    let expected = json!({"channel": "chat:uh", "pub": {"data": {"n": 1}, "offset": 1}});
    // chat: forces join/leave pushes; both streams see the joins before the publication.
    assert_eq!(lines.next_skipping_joins().await, Some(expected.clone()));
    assert_eq!(events.next_skipping_joins().await, Some(expected));

    node.api_ok("disconnect", json!({"user": "h", "disconnect": {"code": 4001, "reason": "go"}})).await;
    assert_eq!(lines.next().await, Some(json!({"disconnect": {"code": 4001, "reason": "go"}})));
    assert_eq!(lines.next().await, None, "the body ends after the disconnect");

    // A client that goes away is noticed at once (its socket is watched), not when a write to
    // it fails (pushes, or a ping every client.ping_interval = 25 s here): nothing is published.
    drop(events);
    until_clients(&node, 0).await;
}

/// `client.connect_code_to_unidirectional_disconnect` turns a refused connect's error code into
/// the configured disconnect; codes it does not list keep the default table.
#[actix_web::test]
async fn connect_error_codes_map_to_configured_disconnects() {
    let node = TestNode::start_with(|s| {
        s.uni_websocket.enabled = true;
        let translations = &mut s.client.connect_code_to_unidirectional_disconnect;
        translations.enabled = true;
        translations.transforms = vec![gyre::config::code_maps::DisconnectTransform {
            code: 109,
            to: gyre::config::code_maps::DisconnectTo { code: 4109, reason: "refresh your token".into() },
        }];
    })
    .await;
    let expired = json!({"token": token(json!({"sub": "x", "exp": now() - 10}))});
    let (mut socket, _) = RawSocket::open_path(&node, "/connection/uni_websocket", "").await;
    socket.send_frame(true, TEXT, expired.to_string().as_bytes()).await;
    assert_eq!(next_json(&mut socket).await, json!({"disconnect": {"code": 4109, "reason": "refresh your token"}}));
    assert_eq!(socket.close_code().await, Some(4109));
}

/// `connect_code_to_http_response` on uni_http_stream and uni_sse: the connect runs before the
/// answer, so a refused one is an HTTP status (the configured one, else 500) with the error
/// message or disconnect reason; an accepted one streams as usual.
#[actix_web::test]
async fn refused_connects_get_http_statuses_when_translations_are_on() {
    use gyre::config::code_maps::{CodeToHttpResponse, HttpResponseTo, HttpTransform};
    let translations = CodeToHttpResponse {
        enabled: true,
        transforms: vec![HttpTransform { code: 109, to: HttpResponseTo { status_code: 401, body: String::new() } }],
    };
    let node = TestNode::start_with(|s| {
        s.uni_http_stream.enabled = true;
        s.uni_sse.enabled = true;
        s.uni_http_stream.connect_code_to_http_response = translations.clone();
        s.uni_sse.connect_code_to_http_response = translations;
    })
    .await;
    let post = |body: Value| {
        awc::Client::new().post(format!("http://{}/connection/uni_http_stream", node.addr)).send_body(body.to_string())
    };
    let mut expired = post(json!({"token": token(json!({"sub": "x", "exp": now() - 10}))})).await.expect("post");
    assert_eq!(expired.status().as_u16(), 401);
    assert_eq!(expired.body().await.expect("body"), "token expired");
    let mut invalid = post(json!({"token": "not.a.token"})).await.expect("post");
    assert_eq!(invalid.status().as_u16(), 500, "a code without a transform");
    assert_eq!(invalid.body().await.expect("body"), "invalid token");
    let accepted = post(json!({"token": token(json!({"sub": "ok", "channels": ["chat:tr"]}))})).await.expect("post");
    assert_eq!(accepted.status().as_u16(), 200);
    let mut lines = BodyReader { body: Box::pin(accepted), buffer: String::new(), separator: "\n" };
    assert!(lines.next().await.expect("connect push")["connect"]["subs"]["chat:tr"].is_object());

    let query = url_encode(&json!({"token": token(json!({"sub": "y", "exp": now() - 10}))}).to_string());
    let sse = awc::Client::new()
        .get(format!("http://{}/connection/uni_sse?cf_connect={query}", node.addr))
        .send()
        .await
        .expect("uni_sse");
    assert_eq!(sse.status().as_u16(), 401);
    let query = url_encode(&json!({"token": token(json!({"sub": "z"}))}).to_string());
    let sse = awc::Client::new()
        .get(format!("http://{}/connection/uni_sse?cf_connect={query}", node.addr))
        .send()
        .await
        .expect("uni_sse");
    assert_eq!(sse.status().as_u16(), 200);
    let mut events = BodyReader { body: Box::pin(sse), buffer: String::new(), separator: "\n\n" };
    assert!(events.next().await.expect("connect push")["connect"]["client"].is_string());
}

#[actix_web::test]
async fn uni_http_requests_get_http_answers_for_bad_input() {
    let node = uni_http_node().await;
    let client = awc::Client::new();
    let url = |path: &str| format!("http://{}{path}", node.addr);
    let status = |r: &awc::ClientResponse<_>| r.status().as_u16();
    let bad_json = client.post(url("/connection/uni_http_stream")).send_body("{nope").await.expect("post");
    assert_eq!(status(&bad_json), 400);
    let too_big = client
        .post(url("/connection/uni_http_stream"))
        .send_body(format!("{{\"name\":\"{}\"}}", "x".repeat(2000)))
        .await
        .expect("post");
    assert_eq!(status(&too_big), 413);
    let get = client.get(url("/connection/uni_http_stream")).send().await.expect("get");
    assert_eq!(status(&get), 405);
    let preflight = client
        .request(actix_web::http::Method::OPTIONS, url("/connection/uni_http_stream"))
        .send()
        .await
        .expect("options");
    assert_eq!(status(&preflight), 204);
    let bad_query = client.get(url("/connection/uni_sse?cf_connect=%7Bnope")).send().await.expect("get");
    assert_eq!(status(&bad_query), 400);
    let put = client.put(url("/connection/uni_sse")).send().await.expect("put");
    assert_eq!(status(&put), 405);
    let off = TestNode::start().await;
    let missing =
        client.post(format!("http://{}/connection/uni_http_stream", off.addr)).send_body("{}").await.expect("post");
    assert_eq!(status(&missing), 404);
}

/// Bidirectional emulation over SSE, driven by hand: the connect command in `cf_connect`, the
/// connect reply carrying `session` and `node`, a subscribe posted to `/emulation`, the
/// publication on the stream; bad `/emulation` requests get Centrifugo's statuses; CORS.
#[actix_web::test]
async fn sse_emulation_takes_commands_through_emulation() {
    let node = TestNode::start_with(|s| {
        s.sse.enabled = true;
        s.client.allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let connect = json!({"id": 1, "connect": {"token": token(json!({"sub": "e"}))}}).to_string();
    let response = awc::Client::new()
        .get(format!("http://{}/connection/sse?cf_connect={}", node.addr, url_encode(&connect)))
        .insert_header(("Origin", "https://app.example"))
        .send()
        .await
        .expect("sse");
    assert_eq!(
        response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap()),
        Some("https://app.example")
    );
    let mut events = BodyReader { body: Box::pin(response), buffer: String::new(), separator: "\n\n" };
    let reply = events.next().await.expect("connect reply");
    assert_eq!(reply["id"], 1);
    let session = reply["connect"]["session"].as_str().expect("session").to_owned();
    let node_id = reply["connect"]["node"].as_str().expect("node").to_owned();

    let post = |body: String| awc::Client::new().post(format!("http://{}/emulation", node.addr)).send_body(body);
    let subscribe = json!({"id": 2, "subscribe": {"channel": "emu"}}).to_string();
    let answer = post(json!({"session": session, "node": node_id, "data": subscribe}).to_string()).await.expect("post");
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(events.next().await.expect("subscribe reply")["id"], 2);
    node.api_ok("publish", json!({"channel": "emu", "data": 7})).await;
    let push = events.next().await.expect("publication");
    assert_eq!(push["push"]["pub"]["data"], 7, "{push}");

    let status = |body: String| async move { post(body).await.expect("post").status().as_u16() };
    let other_node = json!({"session": session, "node": "elsewhere", "data": "{}"}).to_string();
    assert_eq!(status(other_node).await, 404);
    let gone = json!({"session": "gone", "node": node_id, "data": "{}"}).to_string();
    assert_eq!(status(gone).await, 204, "an unknown session is not an error, as in Centrifugo");
    assert_eq!(status("{nope".into()).await, 400);
    assert_eq!(status("x".repeat(70_000)).await, 413);
    let protobuf = |body: &'static [u8]| {
        awc::Client::new()
            .post(format!("http://{}/emulation", node.addr))
            .insert_header(("Content-Type", "application/octet-stream"))
            .send_body(body)
    };
    // A Protobuf EmulationRequest {node: "x"}: decoded, and another node's.
    assert_eq!(protobuf(b"\x0a\x01x").await.expect("post").status().as_u16(), 404);
    assert_eq!(protobuf(b"\xff\xff\xff").await.expect("post").status().as_u16(), 400);
    let get = awc::Client::new().get(format!("http://{}/emulation", node.addr)).send().await.expect("get");
    assert_eq!(get.status().as_u16(), 405);
    let no_connect = awc::Client::new().get(format!("http://{}/connection/sse", node.addr)).send().await.expect("get");
    assert_eq!(no_connect.status().as_u16(), 400);
}

/// Behind a load balancer without sticky sessions an `/emulation` request may reach another
/// node: it is relayed through NATS to the node holding the session.
#[actix_web::test]
async fn an_emulation_request_to_another_node_is_relayed_to_the_session() {
    let nats = NatsServer::for_nodes(2).await;
    let a = TestNode::start_clustered_with(&nats, "a", |s| s.sse.enabled = true).await;
    let b = TestNode::start_clustered_with(&nats, "b", |s| s.sse.enabled = true).await;
    a.wait_for_nodes(nats.cluster_size(2)).await;
    b.wait_for_nodes(nats.cluster_size(2)).await;
    let connect = json!({"id": 1, "connect": {"token": token(json!({"sub": "r"}))}}).to_string();
    let response = awc::Client::new()
        .get(format!("http://{}/connection/sse?cf_connect={}", a.addr, url_encode(&connect)))
        .send()
        .await
        .expect("sse on a");
    let mut events = BodyReader { body: Box::pin(response), buffer: String::new(), separator: "\n\n" };
    let reply = events.next().await.expect("connect reply");
    let (session, node_a) = (reply["connect"]["session"].clone(), reply["connect"]["node"].clone());

    let post_to_b =
        |body: Value| awc::Client::new().post(format!("http://{}/emulation", b.addr)).send_body(body.to_string());
    let subscribe = json!({"id": 2, "subscribe": {"channel": "relayed"}}).to_string();
    let answer = post_to_b(json!({"session": session, "node": node_a, "data": subscribe})).await.expect("post to b");
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(events.next().await.expect("subscribe reply, through node a's stream")["id"], 2);
    b.api_ok("publish", json!({"channel": "relayed", "data": "across"})).await;
    assert_eq!(events.next().await.expect("publication")["push"]["pub"]["data"], "across");

    let unknown = post_to_b(json!({"session": session, "node": "no-such-node", "data": "{}"})).await.expect("post");
    assert_eq!(unknown.status().as_u16(), 404);
}

/// An emulated client cannot be stopped from sending as a WebSocket one is (by not reading it):
/// past 64 `/emulation` requests waiting to run it is closed with 3008, and the node serves on.
#[actix_web::test]
async fn an_emulated_client_flooding_commands_is_closed_with_3008() {
    let node = TestNode::start_with(|s| s.sse.enabled = true).await;
    let connect = json!({"id": 1, "connect": {"token": token(json!({"sub": "f"}))}}).to_string();
    let response = awc::Client::new()
        .get(format!("http://{}/connection/sse?cf_connect={}", node.addr, url_encode(&connect)))
        .send()
        .await
        .expect("sse");
    let mut events = BodyReader { body: Box::pin(response), buffer: String::new(), separator: "\n\n" };
    let reply = events.next().await.expect("connect reply");
    let (session, node_id) = (reply["connect"]["session"].clone(), reply["connect"]["node"].clone());
    let subscribe = json!({"id": 2, "subscribe": {"channel": "chat:flood"}}).to_string();
    let body = json!({"session": session, "node": node_id, "data": subscribe}).to_string();
    awc::Client::new().post(format!("http://{}/emulation", node.addr)).send_body(body).await.expect("subscribe");
    assert_eq!(events.next().await.expect("subscribe reply")["id"], 2);
    // History reads each wait for the channel's answer: the session is busy while they run.
    let lines: Vec<String> =
        (0..50).map(|n| json!({"id": n + 10, "history": {"channel": "chat:flood", "limit": 0}}).to_string()).collect();
    let data = lines.join("\n");
    let posts = (0..300).map(|_| {
        let body = json!({"session": session, "node": node_id, "data": data}).to_string();
        awc::Client::new().post(format!("http://{}/emulation", node.addr)).send_body(body)
    });
    for answer in futures_util::future::join_all(posts).await {
        assert_eq!(answer.expect("post").status().as_u16(), 204);
    }
    let disconnect = loop {
        let message = events.next().await.expect("the stream goes on until the disconnect");
        assert!(message.get("error").is_none(), "{message}");
        if message["push"]["disconnect"].is_object() {
            break message;
        }
    };
    assert_eq!(disconnect["push"]["disconnect"]["code"], 3008, "{disconnect}");
    assert_eq!(events.next().await, None, "then the stream ends");
    let mut other = node.connect_as("other").await;
    assert_eq!(other.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}

/// A `uni_grpc` client as a generated stub would be: `Consume(ConnectRequest)` returning a
/// stream of `Push` (the client protocol's messages are field-compatible with the uni-stream
/// proto's).
async fn consume(node: &TestNode, request: wire::ConnectRequest) -> tonic::Streaming<wire::Push> {
    let endpoint = format!("http://{}", node.grpc_addr());
    let channel =
        tonic::transport::Endpoint::from_shared(endpoint).expect("endpoint").connect().await.expect("gRPC connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/centrifugal.centrifugo.unistream.CentrifugoUniStream/Consume");
    let codec = tonic_prost::ProstCodec::<wire::ConnectRequest, wire::Push>::default();
    grpc.server_streaming(tonic::Request::new(request), path, codec).await.expect("Consume answered").into_inner()
}

async fn next_push(stream: &mut tonic::Streaming<wire::Push>) -> Option<wire::Push> {
    tokio::time::timeout(WAIT, stream.message()).await.expect("a push in time").expect("stream status OK")
}

fn grpc_node_settings(settings: &mut gyre::config::Settings) {
    settings.uni_grpc.enabled = true;
    settings.uni_grpc.port = 0;
    settings.uni_grpc.address = "127.0.0.1".into();
}

/// uni_grpc: the connect push first (Connect's own field numbers), then channel publications
/// as Protobuf pushes, one per message; a server disconnect arrives as a push and ends the
/// stream with status OK; the connection count returns to where it was.
#[actix_web::test]
async fn uni_grpc_streams_the_connect_push_then_publications_until_disconnected() {
    let node = TestNode::start_with(grpc_node_settings).await;
    let token = token(json!({"sub": "grpc-user", "channels": ["news"]}));
    let mut stream = consume(&node, wire::ConnectRequest { token, ..Default::default() }).await;
    let connect = next_push(&mut stream).await.expect("connect push").connect.expect("a connect push");
    assert!(!connect.client.is_empty());
    assert!(connect.subs.contains_key("news"), "{connect:?}");
    node.api_ok("publish", json!({"channel": "news", "data": {"text": "over gRPC"}})).await;
    let publication = next_push(&mut stream).await.expect("publication push");
    assert_eq!(publication.channel, "news");
    let data = publication.r#pub.expect("a publication").data;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&data).unwrap(), json!({"text": "over gRPC"}));
    node.api_ok("disconnect", json!({"user": "grpc-user", "disconnect": {"code": 4000, "reason": "bye"}})).await;
    let disconnect = next_push(&mut stream).await.expect("disconnect push").disconnect.expect("a disconnect push");
    assert_eq!((disconnect.code, disconnect.reason.as_str()), (4000, "bye"));
    assert!(next_push(&mut stream).await.is_none(), "the stream ends with OK");
    until_clients(&node, 0).await;
}

/// uni_grpc refuses like the other uni transports: an expired token is the disconnect push
/// 3005, and a client that goes away is forgotten.
#[actix_web::test]
async fn uni_grpc_expired_token_is_a_3005_disconnect_and_gone_clients_are_forgotten() {
    let node = TestNode::start_with(grpc_node_settings).await;
    let expired = token(json!({"sub": "late", "exp": 1_000}));
    let mut stream = consume(&node, wire::ConnectRequest { token: expired, ..Default::default() }).await;
    let disconnect = next_push(&mut stream).await.expect("disconnect push").disconnect.expect("a disconnect push");
    assert_eq!(disconnect.code, 3005);
    assert!(next_push(&mut stream).await.is_none());

    let token = token(json!({"sub": "leaver"}));
    let mut stream = consume(&node, wire::ConnectRequest { token, ..Default::default() }).await;
    next_push(&mut stream).await.expect("connect push");
    until_clients(&node, 1).await;
    drop(stream);
    until_clients(&node, 0).await;
}

/// Waits (bounded) until the node counts `count` connected clients.
async fn until_clients(node: &TestNode, count: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = node.api_ok("info", json!({})).await;
        if info["nodes"][0]["num_clients"] == count {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "num_clients is not {count}: {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw HTTP request on a fresh connection (a client socket with a small receive buffer);
/// returns the socket and the answer's first bytes.
async fn raw_http(node: &TestNode, request: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(node.addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = vec![0; 2048];
    let n = tokio::time::timeout(WAIT, stream.read(&mut answer)).await.expect("answer in time").expect("read");
    (stream, String::from_utf8_lossy(&answer[..n]).into_owned())
}

/// A stream reader that stops reading: what it has not read piles up in its session until it
/// passes client.queue_max_size, then the session ends (3008, as on a WebSocket) and the node
/// forgets the client while serving everyone else.
#[actix_web::test]
async fn an_http_stream_reader_that_stops_reading_is_disconnected_as_slow() {
    let node = TestNode::start_with(|s| {
        s.uni_http_stream.enabled = true;
        s.client.queue_max_size = 64 * 1024;
    })
    .await;
    let body = json!({"token": token(json!({"sub": "stalled", "channels": ["chat:flood"]}))}).to_string();
    let request =
        format!("POST /connection/uni_http_stream HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let (stalled, answer) = raw_http(&node, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    until_clients(&node, 1).await;
    let pad = "x".repeat(32 * 1024);
    let mut published = 0;
    while published < 600 {
        node.api_ok("publish", json!({"channel": "chat:flood", "data": {"n": published, "pad": pad}})).await;
        published += 1;
        if node.api_ok("info", json!({})).await["nodes"][0]["num_clients"] == 0 {
            break;
        }
    }
    assert!(published < 600, "the stalled reader was never disconnected");
    let other = node.connect_as("other").await;
    assert!(!other.id.is_empty(), "the node serves others");
    drop(stalled);
}

/// 1,000 SSE streams from one client: each is a connection like any other, so
/// client.connection_limit bounds them (503 beyond), the node keeps serving, and the count
/// returns to zero once they close.
#[actix_web::test]
async fn a_thousand_sse_streams_are_bounded_by_the_connection_limit_and_cleaned_up() {
    let node = TestNode::start_with(|s| {
        s.uni_sse.enabled = true;
        s.client.connection_limit = 900;
    })
    .await;
    let query = url_encode(&json!({"token": token(json!({"sub": "many"}))}).to_string());
    let request = format!("GET /connection/uni_sse?cf_connect={query} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut streams = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..1000 {
        let (stream, answer) = raw_http(&node, &request).await;
        match answer.get(..12) {
            Some("HTTP/1.1 200") => accepted += 1,
            Some("HTTP/1.1 503") => refused += 1,
            _ => panic!("unexpected answer: {answer}"),
        }
        streams.push(stream);
    }
    assert_eq!((accepted, refused), (900, 100));
    // The API answers meanwhile (it is what reports the count).
    until_clients(&node, 900).await;
    drop(streams);
    until_clients(&node, 0).await;
}
