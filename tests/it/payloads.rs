//! Payloads are bytes: Protobuf clients get binary data exactly, JSON clients never get a broken
//! frame (3506, as Centrifugo), and `publication_data_format` is checked per namespace.

use base64::Engine as _;
use gyre::config::{ChannelOptions, NamespaceSettings};
use gyre::protocol::protobuf::wire;
use serde_json::json;

use crate::protobuf::{connected, frame, replies};
use crate::support::*;

const BINARY_DATA: &[u8] = &[0, 159, 146, 150, 255, b'\n', b'{'];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn subscribe(id: u32, channel: &str) -> wire::Command {
    let request = wire::SubscribeRequest { channel: channel.into(), ..Default::default() };
    wire::Command { id, subscribe: Some(request), ..Default::default() }
}

/// The next push on a Protobuf connection.
async fn next_push(socket: &mut RawSocket) -> wire::Push {
    replies(socket).await.remove(0).push.expect("a push")
}

/// The next publication pushed to a Protobuf connection, skipping join/leave.
async fn next_publication(socket: &mut RawSocket) -> wire::Publication {
    loop {
        if let Some(publication) = next_push(socket).await.r#pub {
            return publication;
        }
    }
}

#[actix_web::test]
async fn api_b64data_reaches_protobuf_subscribers_exactly_and_json_subscribers_get_3506() {
    let node = TestNode::start().await;
    let mut pb = connected(&node, "pb").await;
    pb.send_frame(true, BINARY, &frame(&[subscribe(2, "bin")])).await;
    assert!(replies(&mut pb).await[0].subscribe.is_some());
    let mut json_client = RawSocket::connected(&node, "js").await;
    json_client.send_frame(true, TEXT, br#"{"id":2,"subscribe":{"channel":"bin"}}"#).await;
    assert_eq!(json_client.next_frame().await, Some((TEXT, br#"{"id":2,"subscribe":{}}"#.to_vec())));

    node.api_ok("publish", json!({"channel": "bin", "b64data": b64(BINARY_DATA)})).await;
    assert_eq!(&next_publication(&mut pb).await.data[..], BINARY_DATA);
    assert_eq!(json_client.close_code().await, Some(3506), "JSON cannot carry binary data");

    // The channel goes on: JSON data reaches the Protobuf subscriber, and a new JSON subscriber.
    let mut json_again = node.connect_as("js2").await;
    json_again.request(2, "subscribe", json!({"channel": "bin"})).await;
    node.api_ok("publish", json!({"channel": "bin", "data": {"after": 1}})).await;
    assert_eq!(&next_publication(&mut pb).await.data[..], br#"{"after":1}"#);
    assert_eq!(json_again.publication("bin").await["data"], json!({"after": 1}));
}

#[actix_web::test]
async fn a_protobuf_client_publishes_binary_data_and_reads_it_back_from_history() {
    let node = TestNode::start().await;
    let mut pb = connected(&node, "pb").await;
    pb.send_frame(true, BINARY, &frame(&[subscribe(2, "chat:bin")])).await;
    assert!(replies(&mut pb).await[0].subscribe.is_some());
    let publish = wire::PublishRequest { channel: "chat:bin".into(), data: BINARY_DATA.to_vec().into() };
    pb.send_frame(true, BINARY, &frame(&[wire::Command { id: 3, publish: Some(publish), ..Default::default() }])).await;
    let mut publication = None;
    let mut replied = false;
    while publication.is_none() || !replied {
        for reply in replies(&mut pb).await {
            replied |= reply.id == 3 && reply.publish.is_some();
            publication = publication.or(reply.push.and_then(|p| p.r#pub));
        }
    }
    let publication = publication.expect("a publication");
    assert_eq!((&publication.data[..], publication.offset), (BINARY_DATA, 1));
    assert_eq!(publication.info.map(|i| i.user), Some("pb".to_owned()));

    let history = wire::HistoryRequest { channel: "chat:bin".into(), limit: -1, ..Default::default() };
    pb.send_frame(true, BINARY, &frame(&[wire::Command { id: 4, history: Some(history), ..Default::default() }])).await;
    let result = replies(&mut pb).await.remove(0).history.expect("a history result");
    assert_eq!(result.publications.iter().map(|p| &p.data[..]).collect::<Vec<_>>(), vec![BINARY_DATA]);

    // The HTTP API speaks JSON: it cannot return binary data; HTTP 500, as Centrifugo answers.
    let (status, body) = node.api("history", json!({"channel": "chat:bin", "limit": -1})).await;
    assert_eq!((status, body.as_str()), (500, "Internal Server Error\n"));
    let batch = json!({"commands": [{"info": {}}, {"history": {"channel": "chat:bin", "limit": -1}}]});
    assert_eq!(node.api("batch", batch).await.0, 500, "one unencodable result fails the batch");
    let (status, body) = node.api("history", json!({"channel": "chat:other"})).await;
    assert_eq!(status, 200, "other calls are not affected: {body}");
    // A JSON client asking for that history is closed with 3506; nothing else breaks.
    let mut json_client = node.connect_as("js").await;
    json_client.request(2, "subscribe", json!({"channel": "chat:bin"})).await;
    json_client.send(r#"{"id":3,"history":{"channel":"chat:bin","limit":-1}}"#).await;
    assert_eq!(json_client.closed().await.0, 3506);
    let stats = node.api_ok("presence_stats", json!({"channel": "chat:bin"})).await;
    assert_eq!(stats["num_clients"], 1, "the Protobuf client is still there");
}

#[actix_web::test]
async fn binary_connection_info_reaches_protobuf_clients_in_presence() {
    let node = TestNode::start().await;
    let info = [7u8, 0, 255];
    let (mut pb, _) = RawSocket::open_with(&node, "?format=protobuf", "").await;
    let connect =
        wire::ConnectRequest { token: token(json!({"sub": "u", "b64info": b64(&info)})), ..Default::default() };
    pb.send_frame(true, BINARY, &frame(&[wire::Command { id: 1, connect: Some(connect), ..Default::default() }])).await;
    assert!(replies(&mut pb).await[0].connect.is_some());
    pb.send_frame(true, BINARY, &frame(&[subscribe(2, "chat:i")])).await;
    assert!(replies(&mut pb).await[0].subscribe.is_some());
    let presence = wire::PresenceRequest { channel: "chat:i".into() };
    pb.send_frame(true, BINARY, &frame(&[wire::Command { id: 3, presence: Some(presence), ..Default::default() }]))
        .await;
    let got = loop {
        let reply = replies(&mut pb).await.remove(0);
        if let Some(presence) = reply.presence {
            break presence;
        }
    };
    let infos: Vec<&[u8]> = got.presence.values().map(|c| &c.conn_info[..]).collect();
    assert_eq!(infos, vec![&info[..]]);
}

fn formats_node(s: &mut gyre::config::Settings) {
    s.channel.publication_data_format = "json".into();
    let publishable = |format: &str| ChannelOptions {
        publication_data_format: format.into(),
        allow_subscribe_for_client: true,
        allow_publish_for_client: true,
        ..Default::default()
    };
    s.channel.namespaces.push(NamespaceSettings { name: "obj".into(), options: publishable("json_object") });
    s.channel.namespaces.push(NamespaceSettings { name: "raw".into(), options: publishable("binary") });
}

#[actix_web::test]
async fn publication_data_format_is_checked_per_namespace_for_the_api_and_clients() {
    let node = TestNode::start_with(formats_node).await;
    let code = |result: serde_json::Value| result["error"]["code"].as_u64();
    let publish = |body: serde_json::Value| {
        let node = &node;
        async move { serde_json::from_str::<serde_json::Value>(&node.api("publish", body).await.1).expect("json") }
    };
    assert_eq!(code(publish(json!({"channel": "obj:x", "data": [1]})).await), Some(107));
    assert_eq!(code(publish(json!({"channel": "obj:x", "data": {"a": 1}})).await), None);
    // The global `json` format applies to channels without a namespace value.
    assert_eq!(code(publish(json!({"channel": "plain", "b64data": b64(BINARY_DATA)})).await), Some(107));
    assert_eq!(code(publish(json!({"channel": "plain", "b64data": b64(b"[1]")})).await), None);
    // `binary` takes anything, empty data included; bad base64 is 107 everywhere.
    assert_eq!(code(publish(json!({"channel": "raw:x", "b64data": b64(BINARY_DATA)})).await), None);
    assert_eq!(code(publish(json!({"channel": "raw:x"})).await), None);
    assert_eq!(code(publish(json!({"channel": "raw:x", "b64data": "%%%"})).await), Some(107));
    let broadcast = node.api_ok("broadcast", json!({"channels": ["obj:a", "raw:a"], "data": [2]})).await;
    assert_eq!(broadcast["responses"][0]["error"]["code"], 107, "{broadcast}");
    assert!(broadcast["responses"][1]["error"].is_null(), "{broadcast}");

    let mut client = node.connect_as("c").await;
    let refused = client.request(2, "publish", json!({"channel": "obj:x", "data": "text"})).await;
    assert_eq!(refused["error"]["code"], 107, "{refused}");
    let accepted = client.request(3, "publish", json!({"channel": "obj:x", "data": {"ok": true}})).await;
    assert_eq!(accepted["publish"], json!({}), "{accepted}");
}
