use serde_json::json;

use crate::support::*;

#[actix_web::test]
async fn presence_lists_subscribers_and_join_leave_are_pushed() {
    let node = TestNode::start().await;
    let mut alice = node.connect_as("alice").await;
    alice.request(2, "subscribe", json!({"channel": "chat:p", "join_leave": true})).await;
    let own_join = alice.push("chat:p").await;
    assert_eq!(own_join["join"]["info"]["user"], "alice");
    let mut bob = node.connect_as("bob").await;
    bob.request(2, "subscribe", json!({"channel": "chat:p"})).await;
    let join = alice.push("chat:p").await;
    assert_eq!(join["join"]["info"]["user"], "bob");
    let presence = alice.request(3, "presence", json!({"channel": "chat:p"})).await;
    let users: Vec<&str> =
        presence["presence"]["presence"].as_object().unwrap().values().map(|i| i["user"].as_str().unwrap()).collect();
    assert_eq!(users.len(), 2);
    assert!(users.contains(&"alice") && users.contains(&"bob"));
    let stats = alice.request(4, "presence_stats", json!({"channel": "chat:p"})).await;
    assert_eq!(stats["presence_stats"], json!({"num_clients": 2, "num_users": 2}));
    bob.request(3, "unsubscribe", json!({"channel": "chat:p"})).await;
    let leave = alice.push("chat:p").await;
    assert_eq!(leave["leave"]["info"]["user"], "bob");
    let api = node.api_ok("presence_stats", json!({"channel": "chat:p"})).await;
    assert_eq!(api, json!({"num_clients": 1, "num_users": 1}));
}

#[actix_web::test]
async fn presence_where_disabled_is_108() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    let reply = client.request(2, "presence", json!({"channel": "news"})).await;
    assert_eq!(reply["error"]["code"], 108);
    let (_, body) = node.api("presence", json!({"channel": "news"})).await;
    assert_eq!(body, r#"{"error":{"code":108,"message":"not available"}}"#);
}
