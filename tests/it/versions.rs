//! Publication versions (`version`, `version_epoch`): a publication not newer than the stream's
//! last one is dropped, and the API answers with the current position (Centrifugo v6.2+).

use gyre::config::{ChannelOptions, NamespaceSettings, Settings};
use serde_json::{json, Value};

use crate::support::*;

async fn publish(node: &TestNode, channel: &str, version: u64, epoch: &str, n: u32) -> (u64, String) {
    let body = json!({"channel": channel, "data": {"n": n}, "version": version, "version_epoch": epoch});
    let result = node.api_ok("publish", body).await;
    (result["offset"].as_u64().expect("offset"), result["epoch"].as_str().expect("epoch").to_owned())
}

/// Namespace `short`: history kept one second, so the channel goes idle soon.
fn short_history(s: &mut Settings) {
    s.channel.namespaces.push(NamespaceSettings {
        name: "short".into(),
        options: ChannelOptions {
            history_size: 10,
            history_ttl: std::time::Duration::from_secs(1),
            allow_subscribe_for_client: true,
            ..Default::default()
        },
    });
}

#[actix_web::test]
async fn outdated_versions_are_dropped_and_answered_with_the_current_position() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("v").await;
    client.request(2, "subscribe", json!({"channel": "chat:v"})).await;
    let (first, epoch) = publish(&node, "chat:v", 5, "", 1).await;
    assert_eq!(first, 1);
    let publication = client.publication("chat:v").await;
    assert_eq!((publication["data"]["n"].as_u64(), publication["version"].as_u64()), (Some(1), Some(5)));
    assert_eq!(publish(&node, "chat:v", 5, "", 2).await, (1, epoch.clone()), "the same version is dropped");
    assert_eq!(publish(&node, "chat:v", 3, "", 3).await, (1, epoch.clone()), "an older one too");
    assert_eq!(publish(&node, "chat:v", 2, "other", 4).await.0, 2, "another version epoch starts over");
    assert_eq!(publish(&node, "chat:v", 1, "other", 5).await.0, 2);
    assert_eq!(publish(&node, "chat:v", 0, "", 6).await.0, 3, "unversioned always goes, and resets");
    assert_eq!(publish(&node, "chat:v", 1, "", 7).await.0, 4);
    let delivered: Vec<Value> =
        [client.publication("chat:v").await, client.publication("chat:v").await, client.publication("chat:v").await]
            .into_iter()
            .map(|p| p["data"]["n"].clone())
            .collect();
    assert_eq!(delivered, vec![json!(4), json!(6), json!(7)], "dropped publications are never delivered");
    let history = node.api_ok("history", json!({"channel": "chat:v", "limit": -1})).await;
    assert_eq!(history["publications"].as_array().map(Vec::len), Some(4));
}

#[actix_web::test]
async fn the_last_version_outlives_the_history_it_came_with() {
    let node = TestNode::start_with(short_history).await;
    let (offset, epoch) = publish(&node, "short:v", 7, "", 1).await;
    assert_eq!(offset, 1);
    let emptied = || {
        let node = &node;
        async move { node.api_ok("history", json!({"channel": "short:v", "limit": -1})).await }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while emptied().await["publications"].as_array().is_some_and(|p| !p.is_empty()) {
        assert!(std::time::Instant::now() < deadline, "history never expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(publish(&node, "short:v", 6, "", 2).await, (1, epoch.clone()), "still outdated");
    assert_eq!(publish(&node, "short:v", 8, "", 3).await, (2, epoch));
}
