use serde_json::json;

use crate::support::*;

#[actix_web::test]
async fn broadcast_answers_per_channel_in_order() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "a"})).await;
    client.request(3, "subscribe", json!({"channel": "chat:b"})).await;
    let result = node
        .api_ok(
            "broadcast",
            json!({"channels": ["a", "nope:x", "chat:b"], "data": {"x": 1}}),
        )
        .await;
    let responses = result["responses"].as_array().unwrap();
    assert_eq!(responses[0], json!({"result": {}}));
    assert_eq!(
        responses[1],
        json!({"error": {"code": 102, "message": "unknown channel"}})
    );
    assert_eq!(responses[2]["result"]["offset"], 1);
    assert_eq!(client.publication("a").await["data"], json!({"x": 1}));
    assert_eq!(client.publication("chat:b").await["data"], json!({"x": 1}));
    let (_, empty) = node.api("broadcast", json!({"channels": []})).await;
    assert_eq!(empty, r#"{"error":{"code":107,"message":"bad request"}}"#);
}

#[actix_web::test]
async fn api_key_is_accepted_from_authorization_header() {
    let node = TestNode::start().await;
    let mut response = awc::Client::new()
        .post(format!("http://{}/api/info", node.addr))
        .insert_header(("Authorization", format!("apikey {API_KEY}")))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
    let nodes = body["result"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0]["uid"].is_string() && nodes[0]["name"].is_string());
}

#[actix_web::test]
async fn get_on_api_is_405_with_empty_body() {
    let node = TestNode::start().await;
    let mut response = awc::Client::new()
        .get(format!("http://{}/api/publish", node.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert!(response.body().await.unwrap().is_empty());
}

#[actix_web::test]
async fn b64data_publishes_decoded_json() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    // base64 of {"a":1}
    node.api_ok("publish", json!({"channel": "news", "b64data": "eyJhIjoxfQ=="}))
        .await;
    assert_eq!(client.publication("news").await["data"], json!({"a": 1}));
}

#[actix_web::test]
async fn pretty_printed_data_is_delivered_without_raw_newlines() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    let body = "{\"channel\":\"news\",\"data\":{\n  \"a\": \"x\\ny\"\n}}";
    assert_eq!(node.api_raw("publish", body, Some(API_KEY)).await.0, 200);
    assert_eq!(client.publication("news").await["data"], json!({"a": "x\ny"}));
}
