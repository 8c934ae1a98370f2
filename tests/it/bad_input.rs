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
    assert_eq!(node.api_raw("teleport", "{}", Some(API_KEY)).await.0, 404);
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
