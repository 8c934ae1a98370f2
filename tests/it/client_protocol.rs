use serde_json::json;

use crate::support::*;

#[actix_web::test]
async fn connect_and_subscribe_in_one_frame_are_answered_in_order() {
    let node = TestNode::start().await;
    let mut client = node.socket().await;
    let token = token(json!({"sub": "42", "exp": now() + 3600}));
    // JS SDK style: connect plus subscribes in one frame, id last.
    let frame = format!(
        "{{\"connect\":{{\"token\":\"{token}\",\"name\":\"js\"}},\"id\":1}}\n{{\"subscribe\":{{\"channel\":\"news\",\"flag\":1}},\"id\":2}}"
    );
    client.send(&frame).await;
    let connect = client.reply(1).await;
    let result = &connect["connect"];
    assert!(result["client"].as_str().is_some_and(|c| c.len() == 36));
    assert_eq!(result["expires"], true);
    assert!(result["ttl"].as_u64().is_some_and(|ttl| (3590..=3600).contains(&ttl)));
    assert_eq!(result["ping"], 25);
    assert_eq!(result["pong"], true);
    assert_eq!(client.reply(2).await, json!({"id": 2, "subscribe": {}}));
}

#[actix_web::test]
async fn each_publication_push_is_a_frame_of_its_own() {
    // centrifuge-js 5.7.4 interleaves the lines of two frames that arrive back to back, so
    // pushes joined into one frame would reach the application out of order.
    let node = TestNode::start().await;
    let mut client = node.connect_as("42").await;
    client.request(2, "subscribe", json!({"channel": "burst"})).await;
    let burst = 20;
    let publishes = (0..burst).map(|n| node.api_ok("publish", json!({"channel": "burst", "data": {"n": n}})));
    futures_util::future::join_all(publishes).await;
    let mut seen = 0;
    while seen < burst {
        let text = client.text_frame().await;
        if text.contains(r#""pub":"#) {
            assert_eq!(text.lines().count(), 1, "{text}");
            seen += 1;
        }
    }
}

#[actix_web::test]
async fn api_publication_reaches_subscriber_as_push() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("42").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    let result = node.api_ok("publish", json!({"channel": "news", "data": {"text": "hi"}, "tags": {"k": "v"}})).await;
    assert_eq!(result, json!({}));
    let push = client.push("news").await;
    assert_eq!(push, json!({"channel": "news", "pub": {"data": {"text": "hi"}, "tags": {"k": "v"}}}));
}

#[actix_web::test]
async fn client_publish_is_broadcast_with_publisher_info() {
    let node = TestNode::start().await;
    let mut alice = node.connect_as("alice").await;
    let mut bob = node.connect_as("bob").await;
    alice.request(2, "subscribe", json!({"channel": "chat:room"})).await;
    bob.request(2, "subscribe", json!({"channel": "chat:room"})).await;
    let reply = alice.request(3, "publish", json!({"channel": "chat:room", "data": {"m": 1}})).await;
    assert_eq!(reply, json!({"id": 3, "publish": {}}));
    let publication = bob.publication("chat:room").await;
    assert_eq!(publication["data"], json!({"m": 1}));
    assert_eq!(publication["info"]["user"], "alice");
    assert_eq!(publication["offset"], 1);
}

#[actix_web::test]
async fn publish_without_permission_is_103_and_unknown_namespace_is_102() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("42").await;
    let denied = client.request(2, "publish", json!({"channel": "news", "data": {}})).await;
    assert_eq!(denied["error"], json!({"code": 103, "message": "permission denied"}));
    let unknown = client.request(3, "subscribe", json!({"channel": "nope:x"})).await;
    assert_eq!(unknown["error"], json!({"code": 102, "message": "unknown channel"}));
}

#[actix_web::test]
async fn second_subscribe_is_105_and_unsubscribe_is_idempotent() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("42").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    let again = client.request(3, "subscribe", json!({"channel": "news"})).await;
    assert_eq!(again["error"]["code"], 105);
    assert_eq!(client.request(4, "unsubscribe", json!({"channel": "news"})).await, json!({"id": 4, "unsubscribe": {}}));
    assert_eq!(client.request(5, "unsubscribe", json!({"channel": "news"})).await, json!({"id": 5, "unsubscribe": {}}));
}

#[actix_web::test]
async fn private_channel_needs_a_subscription_token_for_the_same_user() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("42").await;
    let denied = client.request(2, "subscribe", json!({"channel": "$priv:x"})).await;
    assert_eq!(denied["error"]["code"], 103);
    let namespace_denied = client.request(3, "subscribe", json!({"channel": "priv:x"})).await;
    assert_eq!(namespace_denied["error"]["code"], 103);
    let sub_token = token(json!({"sub": "42", "channel": "priv:x", "exp": now() + 60, "info": {"role": "a"}}));
    let ok = client.request(4, "subscribe", json!({"channel": "priv:x", "token": sub_token})).await;
    assert_eq!(ok["subscribe"]["expires"], true);
    assert!(ok["subscribe"]["ttl"].as_u64().is_some_and(|t| t >= 1));
    let bad_sig = token_with(json!({"sub": "42", "channel": "priv:y"}), "wrong");
    let refused = client.request(5, "subscribe", json!({"channel": "priv:y", "token": bad_sig})).await;
    assert_eq!(refused["error"]["code"], 103);
    let other_user = token(json!({"sub": "7", "channel": "priv:z"}));
    client.send(&json!({"id": 6, "subscribe": {"channel": "priv:z", "token": other_user}}).to_string()).await;
    assert_eq!(client.closed().await, (3500, "invalid token".to_owned()));
}

#[actix_web::test]
async fn rpc_without_handler_is_108_and_ping_command_gets_empty_result() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("42").await;
    let rpc = client.request(2, "rpc", json!({"method": "x", "data": {}})).await;
    assert_eq!(rpc["error"], json!({"code": 108, "message": "not available"}));
    assert_eq!(client.request(3, "ping", json!({})).await, json!({"id": 3, "ping": {}}));
}

#[actix_web::test]
async fn send_closes_with_3508() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("42").await;
    client.send(r#"{"send":{"data":{"x":1}}}"#).await;
    assert_eq!(client.closed().await, (3508, "not available".to_owned()));
}

#[actix_web::test]
async fn anonymous_connect_without_token_depends_on_config() {
    let node = TestNode::start().await;
    let mut refused = node.socket().await;
    refused.send(r#"{"id":1,"connect":{}}"#).await;
    assert_eq!(refused.closed().await.0, 3501);
    let open = TestNode::start_with(|s| s.client.allow_anonymous_connect_without_token = true).await;
    let mut client = open.socket().await;
    let reply = client.request(1, "connect", json!({})).await;
    assert!(reply["connect"]["client"].is_string());
    assert!(reply["connect"].get("expires").is_none());
}

#[actix_web::test]
async fn server_side_subscriptions_from_token_channels_claim() {
    let node = TestNode::start().await;
    let mut client = node.socket().await;
    let token = token(json!({"sub": "42", "channels": ["news", "chat:lobby"]}));
    let reply = client.request(1, "connect", json!({"token": token})).await;
    let subs = &reply["connect"]["subs"];
    assert_eq!(subs["news"], json!({}));
    assert_eq!(subs["chat:lobby"]["recoverable"], true);
    node.api_ok("publish", json!({"channel": "news", "data": "server-side"})).await;
    assert_eq!(client.push("news").await["pub"]["data"], "server-side");
}

#[actix_web::test]
async fn origin_header_is_checked_against_allowed_origins() {
    let node = TestNode::start().await;
    let refused = awc::Client::new().ws(node.ws_url()).origin("http://evil.example").connect().await;
    assert!(matches!(refused, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 403));
    let open = TestNode::start_with(|s| s.client.allowed_origins = vec!["http://localhost:*".into()]).await;
    let ok = awc::Client::new().ws(open.ws_url()).origin("http://localhost:3000").connect().await;
    assert!(ok.is_ok());
}

#[actix_web::test]
async fn channel_churn_never_loses_a_live_subscriber() {
    let node = TestNode::start().await;
    let mut churner = node.connect_as("churn").await;
    let mut id = 2;
    for _ in 0..50 {
        churner.request(id, "subscribe", json!({"channel": "chat:churn"})).await;
        churner.request(id + 1, "unsubscribe", json!({"channel": "chat:churn"})).await;
        id += 2;
    }
    churner.request(id, "subscribe", json!({"channel": "chat:churn"})).await;
    node.api_ok("publish", json!({"channel": "chat:churn", "data": "after churn"})).await;
    assert_eq!(churner.publication("chat:churn").await["data"], "after churn");
    let stats = node.api_ok("presence_stats", json!({"channel": "chat:churn"})).await;
    assert_eq!(stats, json!({"num_clients": 1, "num_users": 1}));
}

/// `client.user_id_http_header`: a gateway authenticated the user and says so in a header; a
/// connect without a token on such a request is that user's. Without the header it is refused
/// as usual, and a token still decides when one is sent.
#[actix_web::test]
async fn a_gateway_header_names_the_user_of_a_connect_without_a_token() {
    let node = TestNode::start_with(|s| s.client.user_id_http_header = "X-User-Id".into()).await;
    let (mut socket, _) = RawSocket::open_with(&node, "", "X-User-Id: gateway-user\r\n").await;
    socket.send_frame(true, TEXT, br#"{"id":1,"connect":{}}"#).await;
    let (_, reply) = socket.next_frame().await.expect("connect reply");
    assert!(String::from_utf8_lossy(&reply).contains(r#""connect":{"client""#));
    socket.send_frame(true, TEXT, br#"{"id":2,"subscribe":{"channel":"chat:gw"}}"#).await;
    socket.next_frame().await.expect("subscribe reply");
    assert_eq!(presence_users(&node, "chat:gw").await, [json!("gateway-user")]);

    let mut plain = RawSocket::open(&node).await;
    plain.send_frame(true, TEXT, br#"{"id":1,"connect":{}}"#).await;
    assert_eq!(plain.close_code().await, Some(3501), "no header, no token, no anonymous connects");

    let (mut with_token, _) = RawSocket::open_with(&node, "", "X-User-Id: gateway-user\r\n").await;
    let connect = json!({"id": 1, "connect": {"token": token(json!({"sub": "token-user"}))}}).to_string();
    with_token.send_frame(true, TEXT, connect.as_bytes()).await;
    with_token.next_frame().await.expect("connect reply");
    with_token.send_frame(true, TEXT, br#"{"id":2,"subscribe":{"channel":"chat:tok"}}"#).await;
    with_token.next_frame().await.expect("subscribe reply");
    assert_eq!(presence_users(&node, "chat:tok").await, [json!("token-user")]);
}

async fn presence_users(node: &TestNode, channel: &str) -> Vec<serde_json::Value> {
    let presence = node.api_ok("presence", json!({"channel": channel})).await;
    presence["presence"].as_object().expect("presence").values().map(|c| c["user"].clone()).collect()
}

/// `client.connect_include_server_time`: the connect result carries the server's time in Unix
/// milliseconds; without the option it has none.
#[actix_web::test]
async fn the_connect_result_includes_the_server_time_when_asked() {
    let millis = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let node = TestNode::start_with(|s| s.client.connect_include_server_time = true).await;
    let mut client = node.socket().await;
    let before = millis();
    let reply = client.request(1, "connect", json!({"token": token(json!({"sub": "clock"}))})).await;
    let after = millis();
    let time = reply["connect"]["time"].as_i64().expect("a time");
    assert!((before..=after).contains(&time), "{before} <= {time} <= {after}");

    let plain = TestNode::start().await;
    let mut client = plain.socket().await;
    let reply = client.request(1, "connect", json!({"token": token(json!({"sub": "clock"}))})).await;
    assert!(reply["connect"].get("time").is_none(), "{reply}");
}
