use serde_json::json;

use crate::support::*;

#[actix_web::test]
async fn reconnecting_client_recovers_missed_publications_in_order() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    let first = client.request(2, "subscribe", json!({"channel": "chat:r", "recoverable": true, "flag": 1})).await;
    let epoch = first["subscribe"]["epoch"].as_str().expect("epoch").to_owned();
    assert_eq!(first["subscribe"]["recoverable"], true);
    assert_eq!(first["subscribe"]["positioned"], true);
    node.api_ok("publish", json!({"channel": "chat:r", "data": {"n": 1}})).await;
    assert_eq!(client.publication("chat:r").await["offset"], 1);
    drop(client);
    for n in 2..=4 {
        let result = node.api_ok("publish", json!({"channel": "chat:r", "data": {"n": n}})).await;
        assert_eq!(result["offset"], n);
        assert_eq!(result["epoch"], epoch);
    }
    let mut back = node.connect_as("1").await;
    let reply = back
        .request(2, "subscribe", json!({"channel": "chat:r", "recover": true, "offset": 1, "epoch": epoch, "flag": 1}))
        .await;
    let result = &reply["subscribe"];
    assert_eq!(result["recovered"], true);
    assert_eq!(result["was_recovering"], true);
    assert_eq!(result["offset"], 4, "the stream's top, not the client's old offset");
    let offsets: Vec<u64> =
        result["publications"].as_array().unwrap().iter().map(|p| p["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, vec![2, 3, 4]);
    // Live publications continue right after the recovered ones.
    node.api_ok("publish", json!({"channel": "chat:r", "data": {"n": 5}})).await;
    assert_eq!(back.publication("chat:r").await["offset"], 5);
}

#[actix_web::test]
async fn recovery_from_a_lost_epoch_is_not_recovered_or_112_with_flag() {
    let node = TestNode::start().await;
    node.api_ok("publish", json!({"channel": "chat:e", "data": 1})).await;
    let mut client = node.connect_as("1").await;
    let reply = client
        .request(2, "subscribe", json!({"channel": "chat:e", "recover": true, "offset": 5, "epoch": "gone", "flag": 1}))
        .await;
    let result = &reply["subscribe"];
    assert!(result.get("recovered").is_none());
    assert!(result.get("publications").is_none());
    assert_eq!(result["offset"], 1);
    let strict = client
        .request(
            3,
            "subscribe",
            json!({"channel": "chat:e2", "recover": true, "offset": 5, "epoch": "gone", "flag": 3}),
        )
        .await;
    assert_eq!(strict["error"]["code"], 112);
}

#[actix_web::test]
async fn history_honours_limit_since_and_reverse() {
    let node = TestNode::start().await;
    for n in 1..=5 {
        node.api_ok("publish", json!({"channel": "chat:h", "data": n})).await;
    }
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "chat:h"})).await;
    let position_only = client.request(3, "history", json!({"channel": "chat:h"})).await;
    assert_eq!(position_only["history"]["publications"], json!([]));
    assert_eq!(position_only["history"]["offset"], 5);
    let epoch = position_only["history"]["epoch"].clone();
    let page = client
        .request(4, "history", json!({"channel": "chat:h", "limit": 2, "since": {"offset": 2, "epoch": epoch}}))
        .await;
    let data: Vec<_> = page["history"]["publications"].as_array().unwrap().iter().map(|p| p["data"].clone()).collect();
    assert_eq!(data, vec![json!(3), json!(4)]);
    let reverse = client.request(5, "history", json!({"channel": "chat:h", "limit": 2, "reverse": true})).await;
    let data: Vec<_> =
        reverse["history"]["publications"].as_array().unwrap().iter().map(|p| p["data"].clone()).collect();
    assert_eq!(data, vec![json!(5), json!(4)]);
    let wrong_epoch =
        client.request(6, "history", json!({"channel": "chat:h", "since": {"offset": 1, "epoch": "x"}})).await;
    assert_eq!(wrong_epoch["error"]["code"], 112);
    let no_history = client.request(7, "history", json!({"channel": "news"})).await;
    assert_eq!(no_history["error"]["code"], 108);
    let api = node.api_ok("history", json!({"channel": "chat:h", "limit": -1})).await;
    assert_eq!(api["publications"].as_array().unwrap().len(), 5);
    node.api_ok("history_remove", json!({"channel": "chat:h"})).await;
    let after = node.api_ok("history", json!({"channel": "chat:h", "limit": -1})).await;
    assert_eq!(after["publications"], json!([]));
    assert_eq!(after["offset"], 5);
}

#[actix_web::test]
async fn stream_position_survives_the_channel_going_idle() {
    let node = TestNode::start().await;
    let first = node.api_ok("publish", json!({"channel": "chat:idle", "data": 1})).await;
    node.api_ok("history_remove", json!({"channel": "chat:idle"})).await;
    let second = node.api_ok("publish", json!({"channel": "chat:idle", "data": 2})).await;
    assert_eq!(second["offset"], 2);
    assert_eq!(second["epoch"], first["epoch"]);
}

#[actix_web::test]
async fn server_side_subscription_recovers_through_connect_subs() {
    let node = TestNode::start().await;
    let claims = json!({"sub": "1", "channels": ["chat:ss"]});
    let mut client = node.socket().await;
    let first = client.request(1, "connect", json!({"token": token(claims.clone())})).await;
    let epoch = first["connect"]["subs"]["chat:ss"]["epoch"].as_str().expect("positioned").to_owned();
    node.api_ok("publish", json!({"channel": "chat:ss", "data": 1})).await;
    assert_eq!(client.publication("chat:ss").await["offset"], 1);
    drop(client);
    node.api_ok("publish", json!({"channel": "chat:ss", "data": 2})).await;
    node.api_ok("publish", json!({"channel": "chat:ss", "data": 3})).await;
    let mut back = node.socket().await;
    let subs = json!({"chat:ss": {"recover": true, "offset": 1, "epoch": epoch}});
    let reply = back.request(1, "connect", json!({"token": token(claims), "subs": subs})).await;
    let sub = &reply["connect"]["subs"]["chat:ss"];
    assert_eq!(sub["recovered"], true);
    assert_eq!(sub["offset"], 3, "the stream's top");
    let data: Vec<_> = sub["publications"].as_array().unwrap().iter().map(|p| p["data"].clone()).collect();
    assert_eq!(data, vec![json!(2), json!(3)]);
}

/// A channel nobody watches keeps its history without an actor (parked in the registry): the
/// history expires on time, the position outlives it, and a subscriber recovers from it.
#[actix_web::test]
async fn history_of_a_channel_nobody_watches_expires_and_its_stream_continues() {
    let node = TestNode::start_with(|s| {
        s.channel.namespaces.push(gyre::config::NamespaceSettings {
            name: "brief".into(),
            options: gyre::config::ChannelOptions {
                history_size: 10,
                history_ttl: std::time::Duration::from_secs(1),
                force_recovery: true,
                allow_subscribe_for_client: true,
                ..Default::default()
            },
        })
    })
    .await;
    let first = node.api_ok("publish", json!({"channel": "brief:a", "data": 1})).await;
    node.api_ok("publish", json!({"channel": "brief:a", "data": 2})).await;
    let history = node.api_ok("history", json!({"channel": "brief:a", "limit": -1})).await;
    assert_eq!(history["publications"].as_array().map(Vec::len), Some(2));

    let mut expired = None;
    for _ in 0..60 {
        let page = node.api_ok("history", json!({"channel": "brief:a", "limit": -1})).await;
        if page["publications"].as_array().is_some_and(Vec::is_empty) {
            expired = Some(page);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let expired = expired.expect("the history expires within 6 s of a 1 s TTL");
    assert_eq!((expired["offset"].clone(), expired["epoch"].clone()), (json!(2), first["epoch"].clone()));

    let third = node.api_ok("publish", json!({"channel": "brief:a", "data": 3})).await;
    assert_eq!((third["offset"].clone(), third["epoch"].clone()), (json!(3), first["epoch"].clone()));
    let mut client = node.connect_as("1").await;
    let reply = client
        .request(2, "subscribe", json!({"channel": "brief:a", "recover": true, "offset": 2, "epoch": first["epoch"]}))
        .await;
    assert_eq!(reply["subscribe"]["recovered"], true, "{reply}");
    let data: Vec<_> =
        reply["subscribe"]["publications"].as_array().unwrap().iter().map(|p| p["data"].clone()).collect();
    assert_eq!(data, vec![json!(3)]);
    node.api_ok("publish", json!({"channel": "brief:a", "data": 4})).await;
    assert_eq!(client.publication("brief:a").await["offset"], 4);
}
