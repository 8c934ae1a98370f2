//! Resource limits a hostile or buggy client meets, each shown to hold while the node keeps
//! serving: command rate limits (`client.rate_limit.client_command`, error 111).

use std::time::Duration;

use gyre::config::rate_limit::{Bucket, Buckets};
use serde_json::json;

use crate::support::*;

/// `history` limited to 3 a minute: a client reading history in a loop gets 111 (temporary)
/// once the bucket is empty, its other commands still run, and another connection has its own
/// bucket.
#[actix_web::test]
async fn history_reads_over_the_rate_limit_get_111_and_the_connection_keeps_working() {
    let node = TestNode::start_with(|s| {
        let limits = &mut s.client.rate_limit.client_command;
        limits.enabled = true;
        limits.history =
            Buckets { enabled: true, buckets: vec![Bucket { interval: Duration::from_secs(60), rate: 3 }] };
    })
    .await;
    node.api_ok("publish", json!({"channel": "chat:rl", "data": 1})).await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "chat:rl"})).await;
    for id in 3..6 {
        let reply = client.request(id, "history", json!({"channel": "chat:rl", "limit": 10})).await;
        assert_eq!(reply["history"]["publications"][0]["data"], 1, "{reply}");
    }
    for id in 6..20 {
        let reply = client.request(id, "history", json!({"channel": "chat:rl", "limit": 10})).await;
        assert_eq!(reply["error"], json!({"code": 111, "message": "too many requests", "temporary": true}));
    }
    let presence = client.request(20, "presence", json!({"channel": "chat:rl"})).await;
    assert!(presence["presence"].is_object(), "other commands are not limited: {presence}");
    node.api_ok("publish", json!({"channel": "chat:rl", "data": 2})).await;
    assert_eq!(client.publication("chat:rl").await["data"], 2);

    let mut other = node.connect_as("2").await;
    other.request(2, "subscribe", json!({"channel": "chat:rl"})).await;
    let reply = other.request(3, "history", json!({"channel": "chat:rl", "limit": 10})).await;
    assert!(reply.get("error").is_none(), "each connection has its own buckets: {reply}");
}

/// Polls `publish` to `channel` until it succeeds (the node released a channel); `None` after 5 s.
async fn publish_when_room(node: &TestNode, channel: &str) -> Option<serde_json::Value> {
    for _ in 0..100 {
        let (_, text) = node.api("publish", json!({"channel": channel, "data": 1})).await;
        let reply: serde_json::Value = serde_json::from_str(&text).expect("json");
        if reply.get("error").is_none() {
            return Some(reply["result"].clone());
        }
        assert_eq!(reply["error"]["code"], 106, "{reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// `node.channel_limit`: a node holding as many channels as allowed refuses new ones with 106
/// (subscribe, API publish and broadcast) and keeps serving the ones it has; a channel released
/// makes room, and a kept stream position is forgotten, oldest first, to make room.
#[actix_web::test]
async fn a_node_at_its_channel_limit_refuses_new_channels_with_106_and_keeps_serving() {
    let node = TestNode::start_with(|s| {
        s.node.channel_limit = 3;
        s.channel.namespaces.push(gyre::config::NamespaceSettings {
            name: "brief".into(),
            options: gyre::config::ChannelOptions {
                history_size: 10,
                history_ttl: Duration::from_secs(1),
                allow_subscribe_for_client: true,
                ..Default::default()
            },
        });
    })
    .await;
    let mut client = node.connect_as("1").await;
    for (id, channel) in [(2, "a"), (3, "b"), (4, "c")] {
        let reply = client.request(id, "subscribe", json!({"channel": channel})).await;
        assert!(reply.get("error").is_none(), "{reply}");
    }
    let refused = client.request(5, "subscribe", json!({"channel": "d"})).await;
    assert_eq!(refused["error"], json!({"code": 106, "message": "limit exceeded"}));
    let (_, text) = node.api("publish", json!({"channel": "chat:x", "data": 1})).await;
    assert_eq!(text, r#"{"error":{"code":106,"message":"limit exceeded"}}"#);
    let broadcast = node.api_ok("broadcast", json!({"channels": ["a", "chat:y"], "data": 2})).await;
    assert_eq!(broadcast["responses"][0], json!({"result": {}}));
    assert_eq!(broadcast["responses"][1]["error"]["code"], 106);
    assert_eq!(client.publication("a").await["data"], 2, "channels held keep working");

    client.request(6, "unsubscribe", json!({"channel": "c"})).await;
    let first = publish_when_room(&node, "brief:p").await.expect("the unsubscribed channel is released");
    assert_eq!(first["offset"], 1);
    // Once its history expires, brief:p is only a kept position: the oldest such is forgotten to
    // make room for a new channel.
    let mut subscribed = None;
    for id in 7..107 {
        let reply = client.request(id, "subscribe", json!({"channel": "d"})).await;
        if reply.get("error").is_none() {
            subscribed = Some(reply);
            break;
        }
        assert_eq!(reply["error"]["code"], 106, "{reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(subscribed.is_some(), "brief:p's history expired and its position made room");
    let page = node.api_ok("history", json!({"channel": "brief:p", "limit": -1})).await;
    assert!(page.get("offset").is_none() || page["offset"] == 0, "its position was forgotten: {page}");
}
