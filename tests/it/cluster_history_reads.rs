//! Bounded history reads on JetStream and the per-channel cache of recent publications: pages
//! in every direction, their NATS cost, cache invalidation (history_remove, a new epoch), and
//! recovery while publications flow. See: issue #17, item 2.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::*;

fn offsets(publications: &Value) -> Vec<u64> {
    publications.as_array().map_or_else(Vec::new, |a| a.iter().filter_map(|p| p["offset"].as_u64()).collect())
}

/// A clustered node with namespace `big` (history 300, ttl 300 s) and `brief` (history 10,
/// ttl and meta ttl 1 s: a channel's history and epoch expire within seconds).
async fn node(nats: &NatsServer, name: &str) -> TestNode {
    TestNode::start_clustered_with(nats, name, |s| {
        let options = |size, ttl: u64, meta_ttl: u64| gyre::config::ChannelOptions {
            history_size: size,
            history_ttl: std::time::Duration::from_secs(ttl),
            history_meta_ttl: std::time::Duration::from_secs(meta_ttl),
            force_recovery: true,
            allow_subscribe_for_client: true,
            allow_history_for_subscriber: true,
            ..Default::default()
        };
        for (name, options) in [("big", options(300, 300, 0)), ("brief", options(10, 1, 1))] {
            s.channel.namespaces.push(gyre::config::NamespaceSettings { name: name.into(), options });
        }
    })
    .await
}

async fn history(node: &TestNode, channel: &str, query: Value) -> Value {
    let mut body = json!({"channel": channel});
    if let (Some(body), Some(query)) = (body.as_object_mut(), query.as_object()) {
        body.extend(query.clone());
    }
    node.api_ok("history", body).await
}

/// Polls history until `done` holds (history_remove and expiry take effect asynchronously).
async fn eventually_history(node: &TestNode, channel: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = history(node, channel, json!({"limit": -1})).await;
        if done(&page) {
            return page;
        }
        assert!(std::time::Instant::now() < deadline, "history never got there: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_page_of_a_long_history_is_right_in_every_direction_and_costs_what_it_returns() {
    let nats = NatsServer::for_nodes(1).await;
    let a = node(&nats, "a").await;
    // Interleaved with another channel: offset N of big:c is not sequence N of the stream.
    let mut epoch = String::new();
    for n in 1..=60 {
        epoch = a.api_ok("publish", json!({"channel": "big:c", "data": {"n": n}})).await["epoch"]
            .as_str()
            .expect("epoch")
            .to_owned();
        a.api_ok("publish", json!({"channel": "big:noise", "data": n})).await;
    }
    let since = |offset: u64| json!({"offset": offset, "epoch": epoch});
    let cases: Vec<(Value, Vec<u64>)> = vec![
        (json!({"limit": 1}), vec![1]),
        (json!({"limit": 1, "reverse": true}), vec![60]),
        (json!({"limit": 2, "since": since(30)}), vec![31, 32]),
        (json!({"limit": 2, "since": since(30), "reverse": true}), vec![29, 28]),
        (json!({"limit": 3, "since": since(57)}), vec![58, 59, 60]),
        (json!({"limit": 5, "since": since(58)}), vec![59, 60]),
        (json!({"limit": 3, "since": since(2), "reverse": true}), vec![1]),
        (json!({"limit": 0}), vec![]),
        (json!({"limit": -1}), (1..=60).collect()),
        (json!({"limit": -1, "reverse": true}), (1..=60).rev().collect()),
        (json!({"limit": -1, "since": since(55)}), (56..=60).collect()),
    ];
    for (query, expected) in cases {
        let page = history(&a, "big:c", query.clone()).await;
        assert_eq!(offsets(&page["publications"]), expected, "{query}");
        assert_eq!((page["offset"].as_u64(), page["epoch"].as_str()), (Some(60), Some(epoch.as_str())), "{query}");
        for publication in page["publications"].as_array().into_iter().flatten() {
            assert_eq!(publication["data"]["n"], publication["offset"], "{query}");
        }
    }
    // The newest publication costs one direct get, however long the history: the old reader
    // (a consumer per read: create, info, fetch, delete) sent four requests.
    let before = nats.messages_from_clients().await;
    for _ in 0..20 {
        let page = history(&a, "big:c", json!({"limit": 1, "reverse": true})).await;
        assert_eq!(offsets(&page["publications"]), vec![60]);
    }
    let sent = nats.messages_from_clients().await - before;
    assert!(sent <= 30, "{sent} messages to NATS for 20 reads of the newest publication");
}

#[actix_web::test]
async fn after_history_remove_history_and_recovery_return_only_what_is_left() {
    let nats = NatsServer::for_nodes(2).await;
    let (a, b) = (node(&nats, "a").await, node(&nats, "b").await);
    // A subscriber on a: the channel there keeps its recent publications.
    let mut watcher = a.connect_as("w").await;
    let reply = watcher.request(2, "subscribe", json!({"channel": "big:rm", "recoverable": true})).await;
    let epoch = reply["subscribe"]["epoch"].as_str().expect("epoch").to_owned();
    for n in 1..=5 {
        b.api_ok("publish", json!({"channel": "big:rm", "data": n})).await;
        assert_eq!(watcher.publication("big:rm").await["offset"], n);
    }
    assert_eq!(offsets(&history(&a, "big:rm", json!({"limit": -1})).await["publications"]), vec![1, 2, 3, 4, 5]);
    b.api_ok("history_remove", json!({"channel": "big:rm"})).await;
    let emptied = eventually_history(&a, "big:rm", |h| offsets(&h["publications"]).is_empty()).await;
    assert_eq!((emptied["offset"].as_u64(), emptied["epoch"].as_str()), (Some(5), Some(epoch.as_str())));
    b.api_ok("publish", json!({"channel": "big:rm", "data": 6})).await;
    assert_eq!(watcher.publication("big:rm").await["offset"], 6);
    assert_eq!(offsets(&history(&a, "big:rm", json!({"limit": -1})).await["publications"]), vec![6]);
    assert_eq!(offsets(&history(&b, "big:rm", json!({"limit": -1})).await["publications"]), vec![6]);
    let mut late = a.connect_as("l").await;
    let behind = json!({"channel": "big:rm", "recover": true, "offset": 2, "epoch": epoch});
    let reply = late.request(2, "subscribe", behind).await;
    assert!(reply["subscribe"].get("recovered").is_none(), "removed publications are not recovered: {reply}");
    assert!(offsets(&reply["subscribe"]["publications"]).is_empty(), "{reply}");
    let mut current = a.connect_as("c").await;
    let at_remove = json!({"channel": "big:rm", "recover": true, "offset": 5, "epoch": epoch});
    let reply = current.request(2, "subscribe", at_remove).await;
    assert_eq!(reply["subscribe"]["recovered"], true, "{reply}");
    assert_eq!(offsets(&reply["subscribe"]["publications"]), vec![6]);
}

#[actix_web::test]
async fn a_new_epoch_replaces_the_recent_publications() {
    let nats = NatsServer::for_nodes(2).await;
    let (a, b) = (node(&nats, "a").await, node(&nats, "b").await);
    let mut watcher = a.connect_as("w").await;
    watcher.request(2, "subscribe", json!({"channel": "brief:e", "recoverable": true})).await;
    let first = b.api_ok("publish", json!({"channel": "brief:e", "data": 1})).await;
    let old_epoch = first["epoch"].as_str().expect("epoch").to_owned();
    assert_eq!(watcher.publication("brief:e").await["offset"], 1);
    // The channel's messages expire (meta ttl 1 s); reading it then pins a new epoch.
    let renewed = eventually_history(&b, "brief:e", |h| h["epoch"].as_str() != Some(old_epoch.as_str())).await;
    let new_epoch = renewed["epoch"].as_str().expect("epoch").to_owned();
    let published = b.api_ok("publish", json!({"channel": "brief:e", "data": 2})).await;
    assert_eq!((published["offset"].as_u64(), published["epoch"].as_str()), (Some(1), Some(new_epoch.as_str())));
    assert_eq!(watcher.publication("brief:e").await["data"], 2);
    let page = history(&a, "brief:e", json!({"limit": -1})).await;
    assert_eq!((offsets(&page["publications"]), page["epoch"].as_str()), (vec![1], Some(new_epoch.as_str())));
    let mut late = a.connect_as("l").await;
    let old = json!({"channel": "brief:e", "recover": true, "offset": 1, "epoch": old_epoch});
    let reply = late.request(2, "subscribe", old).await;
    assert!(reply["subscribe"].get("recovered").is_none(), "another epoch is never recovered: {reply}");
    assert_eq!(reply["subscribe"]["epoch"], new_epoch.as_str());
}

/// Subscribes from `since` and reads until offset `last`: recovered publications, then live
/// ones, must be every offset after `since` exactly once, in order.
async fn recover_and_follow(node: &TestNode, user: String, since: u64, epoch: String, last: u64) {
    let mut client = node.connect_as(&user).await;
    let params = json!({"channel": "big:flow", "recover": true, "offset": since, "epoch": epoch});
    let reply = client.request(2, "subscribe", params).await;
    let result = &reply["subscribe"];
    assert_eq!(result["recovered"], true, "{user}: {reply}");
    let top = result["offset"].as_u64().expect("offset");
    let mut seen = offsets(&result["publications"]);
    assert_eq!(seen, (since + 1..=top).collect::<Vec<_>>(), "{user}: recovered publications");
    while seen.last().copied().unwrap_or(since) < last {
        seen.push(client.publication("big:flow").await["offset"].as_u64().expect("offset"));
    }
    assert_eq!(seen, (since + 1..=last).collect::<Vec<_>>(), "{user}: no publication missing or twice");
}

#[actix_web::test]
async fn subscribers_recovering_while_publications_flow_get_each_one_once_in_order() {
    let nats = NatsServer::for_nodes(2).await;
    let (a, b) = (node(&nats, "a").await, node(&nats, "b").await);
    let mut epoch = String::new();
    for n in 1..=40 {
        epoch = b.api_ok("publish", json!({"channel": "big:flow", "data": n})).await["epoch"]
            .as_str()
            .expect("epoch")
            .to_owned();
    }
    // The channel starts on a at offset 40: the first recoveries read the store, later ones
    // find what those reads brought in.
    let mut watcher = a.connect_as("w").await;
    watcher.request(2, "subscribe", json!({"channel": "big:flow", "recoverable": true})).await;
    let publisher = async {
        for n in 41..=200 {
            b.api_ok("publish", json!({"channel": "big:flow", "data": n})).await;
        }
    };
    let recovering = (0..16u64).map(|i| recover_and_follow(&a, format!("r{i}"), 1 + (i * 7) % 40, epoch.clone(), 200));
    let (_, _) = futures_util::join!(publisher, join_all(recovering));
    let mut live = Vec::new();
    while live.len() < 160 {
        live.push(watcher.publication("big:flow").await["offset"].as_u64().expect("offset"));
    }
    assert_eq!(live, (41..=200).collect::<Vec<_>>());
}

#[actix_web::test]
async fn recovery_and_history_from_the_recent_publications_ask_jetstream_little() {
    let nats = NatsServer::for_nodes(1).await;
    let a = node(&nats, "a").await;
    let mut watcher = a.connect_as("w").await;
    let reply = watcher.request(2, "subscribe", json!({"channel": "big:warm", "recoverable": true})).await;
    let epoch = reply["subscribe"]["epoch"].as_str().expect("epoch").to_owned();
    for n in 1..=30 {
        a.api_ok("publish", json!({"channel": "big:warm", "data": n})).await;
        assert_eq!(watcher.publication("big:warm").await["offset"], n);
    }
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(a.connect_as(&format!("c{i}")).await);
    }
    let before = nats.messages_from_clients().await;
    for client in &mut clients {
        let params = json!({"channel": "big:warm", "recover": true, "offset": 5, "epoch": epoch});
        let reply = client.request(2, "subscribe", params).await;
        assert_eq!(reply["subscribe"]["recovered"], true, "{reply}");
        assert_eq!(offsets(&reply["subscribe"]["publications"]), (6..=30).collect::<Vec<_>>());
    }
    let sent = nats.messages_from_clients().await - before;
    // The old reader sent four requests per recovery.
    assert!(sent <= 5, "{sent} messages to NATS for 10 recoveries the channel could answer");
    let before = nats.messages_from_clients().await;
    for _ in 0..10 {
        let page = history(&a, "big:warm", json!({"limit": -1})).await;
        assert_eq!(offsets(&page["publications"]), (1..=30).collect::<Vec<_>>());
    }
    let sent = nats.messages_from_clients().await - before;
    // One direct get each (the store's last message says the cached ones are current).
    assert!(sent <= 15, "{sent} messages to NATS for 10 history reads");
}
