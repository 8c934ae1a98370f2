//! History and recovery shared by every node through JetStream.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::*;

fn offsets(publications: &Value) -> Vec<u64> {
    publications.as_array().map_or_else(Vec::new, |a| a.iter().filter_map(|p| p["offset"].as_u64()).collect())
}

/// A nats-server and two clustered nodes on it.
async fn two_nodes() -> (NatsServer, TestNode, TestNode) {
    let nats = NatsServer::for_nodes(2).await;
    let a = TestNode::start_clustered(&nats, "a").await;
    let b = TestNode::start_clustered(&nats, "b").await;
    (nats, a, b)
}

async fn history(node: &TestNode, channel: &str) -> Value {
    node.api_ok("history", json!({"channel": channel, "limit": -1})).await
}

#[actix_web::test]
async fn concurrent_publishers_on_two_nodes_get_contiguous_offsets() {
    let (_nats, a, b) = two_nodes().await;
    let mut watcher = a.connect_as("w").await;
    watcher.request(2, "subscribe", json!({"channel": "chat:race"})).await;
    let publishes = (0..20).map(|n| {
        let node = if n % 2 == 0 { &a } else { &b };
        node.api_ok("publish", json!({"channel": "chat:race", "data": {"n": n}}))
    });
    let results = join_all(publishes).await;
    let mut assigned: Vec<u64> = results.iter().filter_map(|r| r["offset"].as_u64()).collect();
    assigned.sort_unstable();
    assert_eq!(assigned, (1..=20).collect::<Vec<_>>(), "every publish got its own offset");
    let epochs: std::collections::BTreeSet<&str> = results.iter().filter_map(|r| r["epoch"].as_str()).collect();
    assert_eq!(epochs.len(), 1, "one epoch: {epochs:?}");
    // The subscriber sees every offset once, in order.
    let mut received = Vec::new();
    while received.len() < 20 {
        received.push(watcher.publication("chat:race").await["offset"].as_u64().expect("offset"));
    }
    assert_eq!(received, (1..=20).collect::<Vec<_>>());
    // history_size is 10: both nodes keep the same last ten.
    let (on_a, on_b) = (history(&a, "chat:race").await, history(&b, "chat:race").await);
    assert_eq!(offsets(&on_a["publications"]), (11..=20).collect::<Vec<_>>());
    assert_eq!(on_a, on_b);
    assert_eq!(on_a["offset"], 20);
}

#[actix_web::test]
async fn a_client_recovers_on_another_node() {
    let (_nats, a, b) = two_nodes().await;
    let mut client = a.connect_as("1").await;
    let first = client.request(2, "subscribe", json!({"channel": "chat:r", "recoverable": true, "flag": 1})).await;
    let epoch = first["subscribe"]["epoch"].as_str().expect("epoch").to_owned();
    a.api_ok("publish", json!({"channel": "chat:r", "data": {"n": 1}})).await;
    assert_eq!(client.publication("chat:r").await["offset"], 1);
    drop(client);
    for n in 2..=4 {
        let result = b.api_ok("publish", json!({"channel": "chat:r", "data": {"n": n}})).await;
        assert_eq!((result["offset"].as_u64(), result["epoch"].as_str()), (Some(n), Some(epoch.as_str())));
    }
    let mut back = b.connect_as("1").await;
    let reply = back
        .request(2, "subscribe", json!({"channel": "chat:r", "recover": true, "offset": 1, "epoch": epoch, "flag": 1}))
        .await;
    let result = &reply["subscribe"];
    assert_eq!(result["recovered"], true, "{reply}");
    assert_eq!(result["offset"], 4, "the stream's top: {reply}");
    assert_eq!(offsets(&result["publications"]), vec![2, 3, 4]);
    assert_eq!(result["publications"][0]["data"], json!({"n": 2}));
    a.api_ok("publish", json!({"channel": "chat:r", "data": {"n": 5}})).await;
    assert_eq!(back.publication("chat:r").await["offset"], 5);
    // Too far behind (history_size 10): not recovered, never a false positive.
    for n in 6..=20 {
        a.api_ok("publish", json!({"channel": "chat:r", "data": {"n": n}})).await;
    }
    let mut late = a.connect_as("2").await;
    let reply = late
        .request(2, "subscribe", json!({"channel": "chat:r", "recover": true, "offset": 1, "epoch": epoch, "flag": 1}))
        .await;
    assert_eq!(reply["subscribe"]["offset"], 20);
    assert!(reply["subscribe"].get("recovered").is_none(), "{reply}");
}

#[actix_web::test]
async fn an_idempotency_key_repeated_through_another_node_stores_once() {
    let (_nats, a, b) = two_nodes().await;
    let first = a.api_ok("publish", json!({"channel": "chat:once", "data": 1, "idempotency_key": "k1"})).await;
    let repeat = b.api_ok("publish", json!({"channel": "chat:once", "data": 1, "idempotency_key": "k1"})).await;
    assert_eq!(first, repeat);
    assert_eq!(first["offset"], 1);
    let next = b.api_ok("publish", json!({"channel": "chat:once", "data": 2, "idempotency_key": "k2"})).await;
    assert_eq!(next["offset"], 2);
    // Any text is a key: it travels in a NATS header, where a raw line break would not fit.
    let odd = json!({"channel": "chat:once", "data": 3, "idempotency_key": "k\r\n3 é"});
    let third = a.api_ok("publish", odd.clone()).await;
    assert_eq!(third["offset"], 3);
    assert_eq!(b.api_ok("publish", odd).await, third);
    assert_eq!(offsets(&history(&a, "chat:once").await["publications"]), vec![1, 2, 3]);
}

#[actix_web::test]
async fn history_remove_on_one_node_keeps_the_position_everywhere() {
    let (_nats, a, b) = two_nodes().await;
    // An empty channel already has one epoch on every node.
    let empty = history(&a, "chat:rm").await;
    assert_eq!(history(&b, "chat:rm").await, empty);
    for n in 1..=3 {
        let result = a.api_ok("publish", json!({"channel": "chat:rm", "data": n})).await;
        assert_eq!(result["epoch"], empty["epoch"]);
    }
    b.api_ok("history_remove", json!({"channel": "chat:rm"})).await;
    let after = eventually_history(&a, "chat:rm", |h| offsets(&h["publications"]).is_empty()).await;
    assert_eq!((after["offset"].as_u64(), &after["epoch"]), (Some(3), &empty["epoch"]));
    // Removes racing with reads on the other node: no read may find the channel empty and pin a
    // new epoch halfway through a remove.
    for _ in 0..10 {
        let (_, read) = futures_util::join!(
            b.api_ok("history_remove", json!({"channel": "chat:rm"})),
            a.api_ok("history", json!({"channel": "chat:rm", "limit": -1}))
        );
        assert_eq!((read["offset"].as_u64(), &read["epoch"]), (Some(3), &empty["epoch"]), "{read}");
    }
    let next = a.api_ok("publish", json!({"channel": "chat:rm", "data": 4})).await;
    assert_eq!((next["offset"].as_u64(), &next["epoch"]), (Some(4), &empty["epoch"]));
}

/// Polls history until `done` holds (history_remove answers before the store is purged).
async fn eventually_history(node: &TestNode, channel: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = history(node, channel).await;
        if done(&page) {
            return page;
        }
        assert!(std::time::Instant::now() < deadline, "history never got there: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_recoverable_subscriber_misses_nothing_across_a_nats_restart() {
    let nats = NatsServer::for_nodes(1).await;
    let a = TestNode::start_clustered(&nats, "a").await;
    let mut client = a.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "chat:n", "recoverable": true})).await;
    a.api_ok("publish", json!({"channel": "chat:n", "data": 1})).await;
    assert_eq!(client.publication("chat:n").await["offset"], 1);
    let nats = nats.restart().await;
    // Publishes fail while JetStream is away, then succeed: every success is delivered, in order.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut stored = Vec::new();
    while stored.len() < 3 {
        let (_, body) = a.api("publish", json!({"channel": "chat:n", "data": "after"})).await;
        let body: Value = serde_json::from_str(&body).expect("json");
        if let Some(offset) = body["result"]["offset"].as_u64() {
            stored.push(offset);
        }
        assert!(std::time::Instant::now() < deadline, "publishing never recovered: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stored, vec![2, 3, 4], "JetStream kept the channel's position");
    for offset in stored {
        assert_eq!(client.publication("chat:n").await["offset"], offset);
    }
    drop(nats);
}

/// Node a reaches NATS through a proxy; while it is cut off, node b stores two publications on
/// `channel`; after the proxy is restored, a's subscriber must get both, in order.
async fn cut_off_node_catches_up(channel: &str, position_check: std::time::Duration) {
    let nats = NatsServer::for_nodes(2).await;
    let proxy = TcpProxy::start(nats.port).await;
    let url = proxy.url();
    let a = TestNode::start_clustered_with(&nats, "a", move |s| {
        s.broker.nats.url = url;
        s.client.channel_position_check_delay = position_check;
    })
    .await;
    let b = TestNode::start_clustered(&nats, "b").await;
    let mut client = a.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": channel, "recoverable": true})).await;
    b.api_ok("publish", json!({"channel": channel, "data": 1})).await;
    assert_eq!(client.publication(channel).await["offset"], 1);
    // Node a cannot hear NATS while b stores two more; nothing is published after that.
    proxy.cut();
    for n in 2..=3 {
        assert_eq!(b.api_ok("publish", json!({"channel": channel, "data": n})).await["offset"], n);
    }
    proxy.restore();
    assert_eq!(client.publication(channel).await["offset"], 2);
    assert_eq!(client.publication(channel).await["offset"], 3);
}

#[actix_web::test]
async fn a_node_cut_off_from_nats_catches_up_by_the_position_check() {
    cut_off_node_catches_up("chat:cut", std::time::Duration::from_millis(500)).await;
}

#[actix_web::test]
async fn a_node_back_on_nats_catches_up_at_once_not_at_the_next_position_check() {
    // The periodic check would come far too late for the bounded waits: the reconnect does it.
    cut_off_node_catches_up("chat:back", std::time::Duration::from_secs(3600)).await;
}

#[actix_web::test]
async fn history_ttl_drops_publications_but_keeps_the_position_on_every_node() {
    let nats = NatsServer::for_nodes(2).await;
    let short_lived = |s: &mut gyre::config::Settings| {
        s.channel.namespaces.push(gyre::config::NamespaceSettings {
            name: "brief".into(),
            options: gyre::config::ChannelOptions {
                history_size: 5,
                history_ttl: std::time::Duration::from_secs(1),
                ..Default::default()
            },
        });
    };
    let a = TestNode::start_clustered_with(&nats, "a", short_lived).await;
    let b = TestNode::start_clustered_with(&nats, "b", short_lived).await;
    let first = a.api_ok("publish", json!({"channel": "brief:x", "data": 1})).await;
    b.api_ok("publish", json!({"channel": "brief:x", "data": 2})).await;
    assert_eq!(offsets(&history(&b, "brief:x").await["publications"]), vec![1, 2]);
    let expired = eventually_history(&b, "brief:x", |h| offsets(&h["publications"]).is_empty()).await;
    assert_eq!((expired["offset"].as_u64(), &expired["epoch"]), (Some(2), &first["epoch"]));
    assert_eq!(a.api_ok("publish", json!({"channel": "brief:x", "data": 3})).await["offset"], 3);
    assert_eq!(offsets(&history(&a, "brief:x").await["publications"]), vec![3]);
}

#[actix_web::test]
async fn binary_data_crosses_nodes_and_the_stream_byte_for_byte() {
    use base64::Engine as _;
    use gyre::protocol::protobuf::wire;

    use crate::protobuf::{connected, frame, replies};

    let (_nats, a, b) = two_nodes().await;
    let data: &[u8] = &[0, 1, 254, 255, b'\n', b'"'];
    let subscribe = |id, recover: Option<(u64, &str)>| wire::Command {
        id,
        subscribe: Some(wire::SubscribeRequest {
            channel: "chat:bin".into(),
            recover: recover.is_some(),
            offset: recover.map_or(0, |(offset, _)| offset),
            epoch: recover.map_or(String::new(), |(_, epoch)| epoch.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut on_b = connected(&b, "pb").await;
    on_b.send_frame(true, BINARY, &frame(&[subscribe(2, None)])).await;
    let epoch = replies(&mut on_b).await.remove(0).subscribe.expect("subscribed").epoch;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let published = a.api_ok("publish", json!({"channel": "chat:bin", "b64data": encoded})).await;
    assert_eq!(published["offset"], 1);
    let live = loop {
        if let Some(publication) = replies(&mut on_b).await.remove(0).push.and_then(|p| p.r#pub) {
            break publication;
        }
    };
    assert_eq!((&live.data[..], live.offset), (data, 1));
    // A client that was away recovers it from the stream on the other node.
    let mut back = connected(&a, "pb2").await;
    back.send_frame(true, BINARY, &frame(&[subscribe(2, Some((0, &epoch)))])).await;
    let result = replies(&mut back).await.remove(0).subscribe.expect("subscribed");
    assert!(result.recovered, "{result:?}");
    assert_eq!(result.publications.iter().map(|p| &p.data[..]).collect::<Vec<_>>(), vec![data]);
}

#[actix_web::test]
async fn a_delta_subscriber_on_one_node_gets_patches_for_publications_made_on_another() {
    use crate::delta::{delta_namespace, state};

    let nats = NatsServer::for_nodes(2).await;
    let a = TestNode::start_clustered_with(&nats, "a", delta_namespace).await;
    let b = TestNode::start_clustered_with(&nats, "b", delta_namespace).await;
    let mut client = b.connect_as("d").await;
    let reply = client.request(2, "subscribe", json!({"channel": "delta:c", "delta": "fossil"})).await;
    assert_eq!(reply["subscribe"]["delta"], true, "{reply}");
    let mut previous = Vec::new();
    for minute in 1..=3 {
        a.api_ok("publish", json!({"channel": "delta:c", "data": state(minute), "delta": true})).await;
        let publication = client.publication("delta:c").await;
        let text = publication["data"].as_str().expect("a JSON string").as_bytes().to_vec();
        let data = if minute == 1 {
            text
        } else {
            assert_eq!(publication["delta"], true, "{publication}");
            gyre::protocol::fossil::apply(&previous, &text).expect("the patch applies")
        };
        assert_eq!(serde_json::from_slice::<Value>(&data).expect("json"), state(minute));
        previous = data;
    }
}

#[actix_web::test]
async fn versions_are_compared_across_nodes() {
    let (_nats, a, b) = two_nodes().await;
    async fn publish(node: &TestNode, version: u64) -> Value {
        node.api_ok("publish", json!({"channel": "chat:ver", "data": {"v": version}, "version": version})).await
    }
    assert_eq!(publish(&a, 2).await["offset"], 1);
    assert_eq!(publish(&b, 1).await["offset"], 1, "outdated on the other node too");
    assert_eq!(publish(&b, 2).await["offset"], 1);
    assert_eq!(publish(&b, 3).await["offset"], 2);
    assert_eq!(publish(&a, 3).await["offset"], 2, "node a's cached top is stale but the check is not");
    let history = history(&b, "chat:ver").await;
    assert_eq!(offsets(&history["publications"]), vec![1, 2]);
}

#[actix_web::test]
async fn cache_recovery_reads_the_latest_publication_from_the_stream_on_another_node() {
    use crate::cache_recovery::cache_namespaces;

    let nats = NatsServer::for_nodes(2).await;
    let a = TestNode::start_clustered_with(&nats, "a", cache_namespaces).await;
    let b = TestNode::start_clustered_with(&nats, "b", cache_namespaces).await;
    for n in 1..=3 {
        a.api_ok("publish", json!({"channel": "state:c", "data": {"n": n}})).await;
    }
    let mut client = b.connect_as("c").await;
    let reply = client.request(2, "subscribe", json!({"channel": "state:c"})).await;
    assert_eq!(reply["subscribe"]["recovered"], true, "{reply}");
    assert_eq!(offsets(&reply["subscribe"]["publications"]), vec![3]);
    a.api_ok("publish", json!({"channel": "state:c", "data": {"n": 4}})).await;
    assert_eq!(client.publication("state:c").await["offset"], 4);
}

/// A broadcast to many history channels (published through JetStream, 512 at a time) gives
/// every channel its publication once: offset 1 in each, readable and delivered on the other node.
#[actix_web::test]
async fn a_broadcast_to_many_history_channels_is_stored_once_per_channel() {
    let (_nats, a, b) = two_nodes().await;
    let mut watcher = b.connect_as("w").await;
    watcher.request(2, "subscribe", json!({"channel": "chat:bc599"})).await;
    let channels: Vec<String> = (0..600).map(|n| format!("chat:bc{n}")).collect();
    let result = a.api_ok("broadcast", json!({"channels": channels, "data": {"x": 1}})).await;
    let responses = result["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 600);
    assert!(responses.iter().all(|r| r["result"]["offset"] == 1), "{result}");
    assert_eq!(watcher.publication("chat:bc599").await["data"], json!({"x": 1}));
    for channel in ["chat:bc0", "chat:bc511", "chat:bc512"] {
        let page = history(&b, channel).await;
        assert_eq!(offsets(&page["publications"]), vec![1], "{channel}: {page}");
    }
}
