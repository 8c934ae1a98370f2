//! Fossil delta compression: negotiation, full payload first, then patches that apply to the
//! previous publication, in both protocols (protocol-extensions.md §2).

use gyre::config::{ChannelOptions, NamespaceSettings, Settings};
use gyre::protocol::fossil;
use gyre::protocol::protobuf::wire;
use serde_json::{json, Value};

use crate::protobuf::{connected, frame, replies};
use crate::support::*;

/// Namespace `delta`: history, positioning, fossil allowed.
pub fn delta_namespace(s: &mut Settings) {
    s.channel.namespaces.push(NamespaceSettings {
        name: "delta".into(),
        options: ChannelOptions {
            history_size: 10,
            history_ttl: std::time::Duration::from_secs(300),
            force_positioning: true,
            allowed_delta_types: vec!["fossil".into()],
            allow_subscribe_for_client: true,
            allow_publish_for_client: true,
            ..Default::default()
        },
    });
}

/// A score board: successive states differ in a few bytes.
pub fn state(minute: u32) -> Value {
    json!({"match": "home-away", "score": "1:0", "minute": minute, "events": ["kickoff", "goal home", "x".repeat(200)]})
}

#[actix_web::test]
async fn json_subscribers_get_a_full_payload_then_patches_as_json_strings() {
    let node = TestNode::start_with(delta_namespace).await;
    let mut client = node.connect_as("d").await;
    let reply = client.request(2, "subscribe", json!({"channel": "delta:m", "delta": "fossil"})).await;
    assert_eq!(
        (reply["subscribe"]["delta"].as_bool(), reply["subscribe"]["positioned"].as_bool()),
        (Some(true), Some(true)),
        "{reply}"
    );
    let mut plain = node.connect_as("p").await;
    plain.request(2, "subscribe", json!({"channel": "delta:m"})).await;

    let mut previous = Vec::new();
    for minute in 1..=3 {
        node.api_ok("publish", json!({"channel": "delta:m", "data": state(minute), "delta": true})).await;
        let publication = client.publication("delta:m").await;
        let text = publication["data"].as_str().expect("delta subscriptions get data as a JSON string");
        let data = if minute == 1 {
            assert!(publication.get("delta").is_none(), "the first publication is full: {publication}");
            text.as_bytes().to_vec()
        } else {
            assert_eq!(publication["delta"], true, "{publication}");
            assert!(text.len() < 100, "a patch, not the payload: {text}");
            fossil::apply(&previous, text.as_bytes()).expect("the patch applies to the previous payload")
        };
        assert_eq!(serde_json::from_slice::<Value>(&data).expect("json"), state(minute));
        previous = data;
        assert_eq!(plain.publication("delta:m").await["data"], state(minute), "no delta: plain JSON");
    }
    // A publication without the delta flag is sent full (still a JSON string).
    node.api_ok("publish", json!({"channel": "delta:m", "data": state(9)})).await;
    let publication = client.publication("delta:m").await;
    assert!(publication.get("delta").is_none(), "{publication}");
    assert_eq!(serde_json::from_str::<Value>(publication["data"].as_str().expect("string")).expect("json"), state(9));
}

#[actix_web::test]
async fn protobuf_subscribers_get_raw_patches() {
    let node = TestNode::start_with(delta_namespace).await;
    let mut socket = connected(&node, "pb").await;
    let subscribe = wire::SubscribeRequest { channel: "delta:p".into(), delta: "fossil".into(), ..Default::default() };
    socket
        .send_frame(true, BINARY, &frame(&[wire::Command { id: 2, subscribe: Some(subscribe), ..Default::default() }]))
        .await;
    assert!(replies(&mut socket).await[0].subscribe.as_ref().is_some_and(|s| s.delta && s.positioned));
    let mut previous = Vec::new();
    for minute in 1..=3 {
        node.api_ok("publish", json!({"channel": "delta:p", "data": state(minute), "delta": true})).await;
        let publication = replies(&mut socket).await.remove(0).push.and_then(|p| p.r#pub).expect("a publication");
        let data = if minute == 1 {
            assert!(!publication.delta);
            publication.data.to_vec()
        } else {
            assert!(publication.delta && publication.data.len() < 100, "{publication:?}");
            fossil::apply(&previous, &publication.data).expect("applies")
        };
        assert_eq!(serde_json::from_slice::<Value>(&data).expect("json"), state(minute));
        previous = data;
    }
}

#[actix_web::test]
async fn delta_is_granted_only_where_allowed_and_unknown_types_close_with_3501() {
    let node = TestNode::start_with(delta_namespace).await;
    let mut client = node.connect_as("d").await;
    let reply = client.request(2, "subscribe", json!({"channel": "chat:no-delta", "delta": "fossil"})).await;
    assert!(reply["subscribe"].get("delta").is_none(), "chat does not allow fossil: {reply}");
    node.api_ok("publish", json!({"channel": "chat:no-delta", "data": {"a": 1}, "delta": true})).await;
    assert_eq!(client.publication("chat:no-delta").await["data"], json!({"a": 1}));
    client.send(r#"{"id":3,"subscribe":{"channel":"delta:x","delta":"xdelta"}}"#).await;
    assert_eq!(client.closed().await.0, 3501);
}

#[actix_web::test]
async fn recovered_publications_of_a_json_delta_subscription_are_json_strings() {
    let node = TestNode::start_with(|s| {
        delta_namespace(s);
        s.channel.namespaces.last_mut().expect("delta").options.force_recovery = true;
    })
    .await;
    let mut client = node.connect_as("r").await;
    let first = client.request(2, "subscribe", json!({"channel": "delta:r", "delta": "fossil"})).await;
    let epoch = first["subscribe"]["epoch"].as_str().expect("epoch").to_owned();
    for minute in 1..=2 {
        node.api_ok("publish", json!({"channel": "delta:r", "data": state(minute), "delta": true})).await;
    }
    let mut back = node.connect_as("r").await;
    let reply = back
        .request(
            2,
            "subscribe",
            json!({"channel": "delta:r", "delta": "fossil", "recover": true, "offset": 0, "epoch": epoch}),
        )
        .await;
    let publications = reply["subscribe"]["publications"].as_array().expect("recovered").clone();
    let states: Vec<Value> = publications
        .iter()
        .map(|p| serde_json::from_str(p["data"].as_str().expect("a JSON string")).expect("json"))
        .collect();
    assert_eq!(states, vec![state(1), state(2)]);
    // The next live publication is full: recovery does not leave a patch base behind.
    node.api_ok("publish", json!({"channel": "delta:r", "data": state(3), "delta": true})).await;
    let live = back.publication("delta:r").await;
    assert!(live.get("delta").is_none(), "{live}");
}
