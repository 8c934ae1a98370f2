//! Cache recovery mode (`force_recovery_mode: cache`, `auto_cache_recover`): a subscriber
//! recovers only the latest publication, the channel's current state.

use gyre::config::{ChannelOptions, NamespaceSettings, Settings};
use serde_json::{json, Value};

use crate::support::*;

/// Namespaces `state` (cache mode, auto recover) and `manual` (cache mode, recover on request).
pub fn cache_namespaces(s: &mut Settings) {
    let cache = |auto: bool| ChannelOptions {
        history_size: 10,
        history_ttl: std::time::Duration::from_secs(300),
        force_recovery: true,
        force_recovery_mode: "cache".into(),
        auto_cache_recover: auto,
        allow_subscribe_for_client: true,
        ..Default::default()
    };
    s.channel.namespaces.push(NamespaceSettings { name: "state".into(), options: cache(true) });
    s.channel.namespaces.push(NamespaceSettings { name: "manual".into(), options: cache(false) });
}

fn offsets(result: &Value) -> Vec<u64> {
    result["publications"].as_array().map_or_else(Vec::new, |p| p.iter().filter_map(|p| p["offset"].as_u64()).collect())
}

#[actix_web::test]
async fn a_new_subscriber_gets_the_latest_publication_without_asking() {
    let node = TestNode::start_with(cache_namespaces).await;
    let mut epoch = String::new();
    for n in 1..=3 {
        epoch = node.api_ok("publish", json!({"channel": "state:s", "data": {"n": n}})).await["epoch"]
            .as_str()
            .expect("epoch")
            .to_owned();
    }
    let mut client = node.connect_as("c").await;
    let reply = client.request(2, "subscribe", json!({"channel": "state:s"})).await;
    let result = &reply["subscribe"];
    assert_eq!(
        (result["recovered"].as_bool(), result["was_recovering"].as_bool()),
        (Some(true), Some(true)),
        "{reply}"
    );
    assert_eq!(offsets(result), vec![3]);
    assert_eq!(result["publications"][0]["data"], json!({"n": 3}));
    assert!(result.get("offset").is_none(), "the client's own offset (0): {reply}");

    // Behind: only the latest; at the top: nothing more.
    let mut behind = node.connect_as("b").await;
    let reply = behind
        .request(2, "subscribe", json!({"channel": "state:s", "recover": true, "offset": 1, "epoch": epoch}))
        .await;
    assert_eq!((offsets(&reply["subscribe"]), reply["subscribe"]["offset"].as_u64()), (vec![3], Some(1)));
    let mut at_top = node.connect_as("t").await;
    let reply = at_top
        .request(2, "subscribe", json!({"channel": "state:s", "recover": true, "offset": 3, "epoch": epoch}))
        .await;
    assert_eq!(reply["subscribe"]["recovered"], true, "{reply}");
    assert!(offsets(&reply["subscribe"]).is_empty(), "{reply}");
}

#[actix_web::test]
async fn without_auto_recover_only_a_recovering_subscriber_gets_the_latest() {
    let node = TestNode::start_with(cache_namespaces).await;
    for n in 1..=2 {
        node.api_ok("publish", json!({"channel": "manual:s", "data": {"n": n}})).await;
    }
    let mut plain = node.connect_as("p").await;
    let reply = plain.request(2, "subscribe", json!({"channel": "manual:s"})).await;
    assert!(offsets(&reply["subscribe"]).is_empty() && reply["subscribe"].get("recovered").is_none(), "{reply}");
    let mut asking = node.connect_as("a").await;
    let reply = asking.request(2, "subscribe", json!({"channel": "manual:s", "recover": true})).await;
    assert_eq!(offsets(&reply["subscribe"]), vec![2], "{reply}");
}
