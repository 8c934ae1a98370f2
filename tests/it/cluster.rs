//! Two and three nodes relaying through a real nats-server.

use serde_json::json;

use crate::support::*;

#[actix_web::test]
async fn publications_cross_nodes_both_ways() {
    let nats = NatsServer::for_nodes(2).await;
    let a = TestNode::start_clustered(&nats, "a").await;
    let b = TestNode::start_clustered(&nats, "b").await;
    let mut on_a = a.connect_as("alice").await;
    let mut on_b = b.connect_as("bob").await;
    on_a.request(2, "subscribe", json!({"channel": "news"})).await;
    on_b.request(2, "subscribe", json!({"channel": "news"})).await;
    b.api_ok("publish", json!({"channel": "news", "data": "from b"})).await;
    assert_eq!(on_a.publication("news").await["data"], "from b");
    assert_eq!(on_b.publication("news").await["data"], "from b");
    a.api_ok("publish", json!({"channel": "news", "data": "from a"})).await;
    assert_eq!(on_b.publication("news").await["data"], "from a");
    assert_eq!(on_a.publication("news").await["data"], "from a");
}

#[actix_web::test]
async fn client_publish_join_leave_and_presence_span_nodes() {
    let nats = NatsServer::for_nodes(2).await;
    let a = TestNode::start_clustered(&nats, "a").await;
    let b = TestNode::start_clustered(&nats, "b").await;
    a.wait_for_nodes(nats.cluster_size(2)).await;
    b.wait_for_nodes(nats.cluster_size(2)).await;
    let mut alice = a.connect_as("alice").await;
    alice.request(2, "subscribe", json!({"channel": "chat:x"})).await;
    assert_eq!(alice.push("chat:x").await["join"]["info"]["user"], "alice");
    let mut bob = b.connect_as("bob").await;
    bob.request(2, "subscribe", json!({"channel": "chat:x"})).await;
    assert_eq!(alice.push("chat:x").await["join"]["info"]["user"], "bob");
    bob.request(3, "publish", json!({"channel": "chat:x", "data": {"m": 1}})).await;
    let publication = alice.publication("chat:x").await;
    assert_eq!((publication["data"].clone(), publication["info"]["user"].clone()), (json!({"m": 1}), json!("bob")));
    let stats = a.api_ok("presence_stats", json!({"channel": "chat:x"})).await;
    assert_eq!(stats, json!({"num_clients": 2, "num_users": 2}));
    let presence = alice.request(4, "presence", json!({"channel": "chat:x"})).await;
    assert_eq!(presence["presence"]["presence"].as_object().unwrap().len(), 2);
    let channels = b.api_ok("channels", json!({})).await;
    assert_eq!(channels["channels"]["chat:x"]["num_clients"], 2);
    // A pattern reaches the other nodes as the glob it is (regression: it once went out as regex text).
    let filtered = b.api_ok("channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(filtered["channels"]["chat:x"]["num_clients"], 2);
    bob.request(5, "unsubscribe", json!({"channel": "chat:x"})).await;
    loop {
        let push = alice.push("chat:x").await;
        if let Some(leave) = push.get("leave") {
            assert_eq!(leave["info"]["user"], "bob");
            break;
        }
    }
}

#[actix_web::test]
async fn api_disconnect_reaches_a_user_on_another_node() {
    let nats = NatsServer::for_nodes(2).await;
    let a = TestNode::start_clustered(&nats, "a").await;
    let b = TestNode::start_clustered(&nats, "b").await;
    a.wait_for_nodes(nats.cluster_size(2)).await;
    let mut carol = b.connect_as("carol").await;
    a.api_ok("disconnect", json!({"user": "carol", "disconnect": {"code": 4000, "reason": "moved"}})).await;
    assert_eq!(carol.closed().await, (4000, "moved".to_owned()));
}

#[actix_web::test]
async fn info_lists_every_node_and_forgets_a_stopped_one() {
    let nats = NatsServer::for_nodes(3).await;
    let a = TestNode::start_clustered(&nats, "a").await;
    let b = TestNode::start_clustered(&nats, "b").await;
    let mut c = TestNode::start_clustered(&nats, "c").await;
    a.wait_for_nodes(nats.cluster_size(3)).await;
    b.wait_for_nodes(nats.cluster_size(3)).await;
    let info = b.api_ok("info", json!({})).await;
    let mut names: Vec<&str> = info["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, nats.node_names(&["a", "b", "c"]));
    let running = c.running.take().unwrap();
    running.shutdown().await;
    a.wait_for_nodes(nats.cluster_size(2)).await;
}

#[actix_web::test]
async fn nats_outage_fails_publishes_then_delivery_resumes() {
    let mut nats = NatsServer::for_nodes(1).await;
    let a = TestNode::start_clustered(&nats, "a").await;
    let mut client = a.connect_as("dora").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    a.api_ok("publish", json!({"channel": "news", "data": 1})).await;
    assert_eq!(client.publication("news").await["data"], 1);
    nats.stop();
    // While NATS is down a publish is an error, never a silent loss.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, body) = a.api("publish", json!({"channel": "news", "data": "lost?"})).await;
        if body == r#"{"error":{"code":100,"message":"internal server error"}}"# {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "publish kept succeeding with NATS down: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _nats = nats.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, body) = a.api("publish", json!({"channel": "news", "data": 2})).await;
        if body == r#"{"result":{}}"# {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "publishing never recovered: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The client stayed connected and gets deliveries again (a successful publish may have been
    // one of the "lost?" retries that raced the reconnect, so look for the 2).
    loop {
        if client.publication("news").await["data"] == 2 {
            break;
        }
    }
    let mut response = awc::Client::new().get(format!("http://{}/metrics", a.addr)).send().await.unwrap();
    let metrics = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    let value = |name: &str| -> f64 {
        metrics.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    assert!(value("gyre_broker_reconnects_total") >= 1.0, "reconnect not counted");
    assert!(value("gyre_broker_publish_errors_total{type=\"publication\"}") >= 1.0, "failed publish not counted");
    assert!(value("centrifugo_node_messages_sent_count{channel_namespace=\"\",type=\"publication\"}") >= 2.0);
    assert!(value("centrifugo_node_messages_received_count{channel_namespace=\"\",type=\"publication\"}") >= 2.0);
}

#[actix_web::test]
async fn unreachable_nats_at_start_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut settings = test_settings();
    settings.broker.enabled = true;
    settings.broker.kind = "nats".into();
    settings.broker.nats.url = format!("nats://127.0.0.1:{port}");
    let error = match gyre::app::start(settings).await {
        Ok(_) => panic!("started without NATS"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("cannot connect to NATS"), "{error}");
}

#[actix_web::test]
async fn the_same_idempotency_key_through_two_nodes_delivers_once() {
    let nats = NatsServer::for_nodes(2).await;
    let a = TestNode::start_clustered(&nats, "a").await;
    let b = TestNode::start_clustered(&nats, "b").await;
    let mut client = a.connect_as("ida").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    let first = a.api_ok("publish", json!({"channel": "news", "data": 1, "idempotency_key": "order-7"})).await;
    let repeat = b.api_ok("publish", json!({"channel": "news", "data": 1, "idempotency_key": "order-7"})).await;
    assert_eq!(first, repeat);
    // B's repeat (had it been published) would reach the client before B's next publication.
    b.api_ok("publish", json!({"channel": "news", "data": 2})).await;
    assert_eq!(client.publication("news").await["data"], 1);
    assert_eq!(client.publication("news").await["data"], 2);
    // Another key still publishes.
    a.api_ok("publish", json!({"channel": "news", "data": 3, "idempotency_key": "order-8"})).await;
    assert_eq!(client.publication("news").await["data"], 3);
}

/// Five nodes on one nats-server (small sizes): every node sees the others, a publication on
/// one reaches subscribers on all, presence and `channels` count the clients of every node, and
/// an API disconnect on one node reaches a user on another.
#[actix_web::test]
async fn five_nodes_share_publications_presence_and_user_actions() {
    let nats = NatsServer::for_nodes(5).await;
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3", "n4", "n5"] {
        nodes.push(TestNode::start_clustered(&nats, name).await);
    }
    for node in &nodes {
        node.wait_for_nodes(nats.cluster_size(5)).await;
    }
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut client = node.connect_as(&format!("user{i}")).await;
        client.request(2, "subscribe", json!({"channel": "chat:five"})).await;
        clients.push(client);
    }
    // Every node's presence lists the five subscribers once all joins have crossed the cluster.
    for node in &nodes {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let stats = node.api_ok("presence_stats", json!({"channel": "chat:five"})).await;
            if stats == json!({"num_clients": 5, "num_users": 5}) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "presence never counted five: {stats}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    nodes[2].api_ok("publish", json!({"channel": "chat:five", "data": {"from": "n3"}})).await;
    for client in &mut clients {
        assert_eq!(client.publication("chat:five").await["data"], json!({"from": "n3"}));
    }
    let channels = nodes[4].api_ok("channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(channels["channels"]["chat:five"]["num_clients"], 5);
    nodes[0].api_ok("disconnect", json!({"user": "user3", "disconnect": {"code": 4005, "reason": "five"}})).await;
    assert_eq!(clients[3].closed().await.0, 4005);
}
