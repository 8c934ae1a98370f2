use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[actix_web::test]
async fn server_pings_and_closes_with_3012_without_pong() {
    let node = TestNode::start_with(|s| {
        s.client.ping_interval = Duration::from_secs(2);
        s.client.pong_timeout = Duration::from_secs(1);
    })
    .await;
    let mut client = node.connect_as("1").await;
    match client.next().await {
        Event::Line(line) => assert_eq!(line, json!({})),
        other => panic!("expected a ping, got {other:?}"),
    }
    assert_eq!(client.closed().await, (3012, "no pong".to_owned()));
}

#[actix_web::test]
async fn answered_pings_keep_the_connection() {
    let node = TestNode::start_with(|s| {
        s.client.ping_interval = Duration::from_secs(2);
        s.client.pong_timeout = Duration::from_secs(1);
    })
    .await;
    let mut client = node.connect_as("1").await;
    for _ in 0..2 {
        match client.next().await {
            Event::Line(line) => assert_eq!(line, json!({})),
            other => panic!("expected a ping, got {other:?}"),
        }
        client.send("{}").await;
    }
    assert_eq!(client.request(9, "ping", json!({})).await, json!({"id": 9, "ping": {}}));
}

#[actix_web::test]
async fn connection_without_connect_is_closed_as_stale() {
    let node = TestNode::start_with(|s| s.client.stale_close_delay = Duration::from_secs(1)).await;
    let mut client = node.socket().await;
    assert_eq!(client.closed().await, (3502, "stale".to_owned()));
}

#[actix_web::test]
async fn unrefreshed_connection_is_closed_with_3005_and_refresh_extends_it() {
    let node = TestNode::start_with(|s| s.client.expired_close_delay = Duration::ZERO).await;
    let mut refreshed = node.socket().await;
    let reply = refreshed.request(1, "connect", json!({"token": token(json!({"sub": "1", "exp": now() + 2}))})).await;
    assert_eq!(reply["connect"]["expires"], true);
    let renewed =
        refreshed.request(2, "refresh", json!({"token": token(json!({"sub": "1", "exp": now() + 60}))})).await;
    assert_eq!(renewed["refresh"]["expires"], true);
    assert!(renewed["refresh"]["ttl"].as_u64().is_some_and(|t| t > 50));
    let mut lapsed = node.socket().await;
    lapsed.request(1, "connect", json!({"token": token(json!({"sub": "2", "exp": now() + 1}))})).await;
    assert_eq!(lapsed.closed().await, (3005, "connection expired".to_owned()));
    // The refreshed one is still usable after the other's expiry.
    assert_eq!(refreshed.request(3, "ping", json!({})).await, json!({"id": 3, "ping": {}}));
}

#[actix_web::test]
async fn refresh_with_other_users_token_is_3500() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.send(&json!({"id": 2, "refresh": {"token": token(json!({"sub": "2"}))}}).to_string()).await;
    assert_eq!(client.closed().await, (3500, "invalid token".to_owned()));
}

#[actix_web::test]
async fn shutdown_disconnects_clients_with_3001() {
    let mut node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    let running = node.running.take().unwrap();
    let shutdown = actix_web::rt::spawn(running.shutdown());
    assert_eq!(client.closed().await, (3001, "shutdown".to_owned()));
    tokio::time::timeout(WAIT, shutdown).await.expect("shutdown finishes in time").unwrap();
}

/// Several workers (the layout of a multi-core node): the registry keeps a thread of its own,
/// clients accepted by different workers share its channels, and shutdown drains them all.
#[actix_web::test]
async fn several_workers_share_channels_and_drain_on_shutdown() {
    let mut node = TestNode::start_with(|s| s.http_server.workers = 3).await;
    let mut clients = Vec::new();
    for user in ["1", "2", "3", "4", "5", "6"] {
        let mut client = node.connect_as(user).await;
        client.request(2, "subscribe", json!({"channel": "news"})).await;
        clients.push(client);
    }
    node.api_ok("publish", json!({"channel": "news", "data": {"n": 1}})).await;
    for client in &mut clients {
        assert_eq!(client.publication("news").await["data"], json!({"n": 1}));
    }
    let running = node.running.take().unwrap();
    let shutdown = actix_web::rt::spawn(running.shutdown());
    for client in &mut clients {
        assert_eq!(client.closed().await, (3001, "shutdown".to_owned()));
    }
    tokio::time::timeout(WAIT, shutdown).await.expect("shutdown finishes in time").unwrap();
}

#[actix_web::test]
async fn a_pong_that_answers_no_ping_closes_with_3501() {
    let node = TestNode::start_with(|s| {
        s.client.ping_interval = Duration::from_secs(2);
        s.client.pong_timeout = Duration::from_secs(1);
    })
    .await;
    let mut early = node.connect_as("1").await;
    early.send("{}").await;
    assert_eq!(early.closed().await, (3501, "bad request".to_owned()));
    let mut twice = node.connect_as("2").await;
    assert_eq!(twice.next().await, Event::Line(json!({})), "a ping");
    twice.send("{}").await;
    twice.send("{}").await;
    assert_eq!(twice.closed().await, (3501, "bad request".to_owned()));
}
