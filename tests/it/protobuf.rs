use gyre::protocol::protobuf::{decode_replies, wire};
use prost::Message;
use serde_json::json;

use crate::support::*;

/// Length-delimited commands, as a Protobuf client frames them.
pub fn frame(commands: &[wire::Command]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for command in commands {
        command.encode_length_delimited(&mut bytes).expect("encode");
    }
    bytes
}

pub fn connect_command(user: &str) -> wire::Command {
    let connect = wire::ConnectRequest { token: token(json!({"sub": user})), ..Default::default() };
    wire::Command { id: 1, connect: Some(connect), ..Default::default() }
}

/// The next binary frame's replies.
pub async fn replies(socket: &mut RawSocket) -> Vec<wire::Reply> {
    let (opcode, payload) = socket.next_frame().await.expect("a frame");
    assert_eq!(opcode, BINARY, "Protobuf replies come in binary frames");
    decode_replies(&payload).expect("delimited replies")
}

/// A Protobuf connection that completed `connect` as `user`.
pub async fn connected(node: &TestNode, user: &str) -> RawSocket {
    let (mut socket, head) = RawSocket::open_with(node, "", "Sec-WebSocket-Protocol: centrifuge-protobuf\r\n").await;
    assert!(head.to_ascii_lowercase().contains("sec-websocket-protocol: centrifuge-protobuf"), "{head}");
    socket.send_frame(true, BINARY, &frame(&[connect_command(user)])).await;
    let reply = replies(&mut socket).await;
    assert!(reply[0].connect.as_ref().is_some_and(|c| !c.client.is_empty()), "{reply:?}");
    socket
}

#[actix_web::test]
async fn batched_commands_get_their_replies_in_one_binary_frame() {
    let node = TestNode::start().await;
    let mut socket = connected(&node, "pb").await;
    let ping = |id| wire::Command { id, ping: Some(wire::PingRequest {}), ..Default::default() };
    let subscribe = wire::Command {
        id: 4,
        subscribe: Some(wire::SubscribeRequest { channel: "chat:pb".into(), ..Default::default() }),
        ..Default::default()
    };
    socket.send_frame(true, BINARY, &frame(&[ping(2), ping(3)])).await;
    let got = replies(&mut socket).await;
    assert_eq!(got.iter().map(|r| (r.id, r.ping.is_some())).collect::<Vec<_>>(), vec![(2, true), (3, true)]);
    socket.send_frame(true, BINARY, &frame(&[subscribe])).await;
    let got = replies(&mut socket).await;
    assert!(got[0].subscribe.as_ref().is_some_and(|s| s.recoverable && !s.epoch.is_empty()), "{got:?}");
    node.api_ok("publish", json!({"channel": "chat:pb", "data": {"x": 1}})).await;
    // The subscriber's own join comes first (chat pushes join/leave).
    let join = replies(&mut socket).await.remove(0).push.expect("a push");
    assert_eq!(join.join.and_then(|j| j.info).map(|i| i.user), Some("pb".to_owned()));
    let push = replies(&mut socket).await.remove(0).push.expect("a push");
    let publication = push.r#pub.expect("a publication");
    assert_eq!((push.channel.as_str(), &publication.data[..], publication.offset), ("chat:pb", &br#"{"x":1}"#[..], 1));
}

#[actix_web::test]
async fn the_query_selects_protobuf_without_a_subprotocol() {
    let node = TestNode::start().await;
    for query in ["?format=protobuf", "?cf_protocol=protobuf"] {
        let (mut socket, _) = RawSocket::open_with(&node, query, "").await;
        socket.send_frame(true, BINARY, &frame(&[connect_command("q")])).await;
        assert!(replies(&mut socket).await[0].connect.is_some(), "{query}");
    }
}

#[actix_web::test]
async fn errors_are_protobuf_replies() {
    let node = TestNode::start().await;
    let mut socket = connected(&node, "pb").await;
    let subscribe = wire::Command {
        id: 2,
        subscribe: Some(wire::SubscribeRequest { channel: "nope:x".into(), ..Default::default() }),
        ..Default::default()
    };
    socket.send_frame(true, BINARY, &frame(&[subscribe])).await;
    let error = replies(&mut socket).await.remove(0).error.expect("an error reply");
    assert_eq!((error.code, error.message.as_str()), (102, "unknown channel"));
}

#[actix_web::test]
async fn unknown_fields_are_skipped() {
    let node = TestNode::start().await;
    let mut socket = connected(&node, "pb").await;
    // Command {id: 2, ping: {}, field 99 = varint 1}.
    let body = [0x08, 0x02, 0x5a, 0x00, 0x98, 0x06, 0x01];
    let mut bytes = vec![body.len() as u8];
    bytes.extend_from_slice(&body);
    socket.send_frame(true, BINARY, &bytes).await;
    assert_eq!(replies(&mut socket).await[0].id, 2);
}

#[actix_web::test]
async fn malformed_protobuf_frames_close_with_3501_and_others_keep_working() {
    let node = TestNode::start().await;
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty frame", vec![]),
        ("truncated varint", vec![0x80]),
        ("length past the end", vec![9, 0x08, 0x02]),
        // Field 1 (id) sent as length-delimited: a wrong wire type.
        ("wrong wire type", vec![2, 0x0a, 0x00]),
        ("JSON in a text frame", br#"{"id":2,"ping":{}}"#.to_vec()),
    ];
    for (name, bytes) in cases {
        let mut socket = connected(&node, "bad").await;
        let opcode = if name.contains("text") { TEXT } else { BINARY };
        socket.send_frame(true, opcode, &bytes).await;
        assert_eq!(socket.close_code().await, Some(3501), "{name}");
    }
    let mut good = connected(&node, "good").await;
    let ping = wire::Command { id: 9, ping: Some(wire::PingRequest {}), ..Default::default() };
    good.send_frame(true, BINARY, &frame(&[ping])).await;
    assert_eq!(replies(&mut good).await[0].id, 9);
}

#[actix_web::test]
async fn a_protobuf_frame_over_the_size_limit_closes_with_1009() {
    let node = TestNode::start_with(|s| s.websocket.message_size_limit = 1024).await;
    let mut socket = connected(&node, "big").await;
    let publish = wire::Command {
        id: 2,
        publish: Some(wire::PublishRequest {
            channel: "chat:x".into(),
            data: format!("\"{}\"", "x".repeat(2000)).into(),
        }),
        ..Default::default()
    };
    socket.send_frame(true, BINARY, &frame(&[publish])).await;
    assert_eq!(socket.close_code().await, Some(1009));
}

#[actix_web::test]
async fn a_binary_frame_on_a_json_connection_is_json_or_3501() {
    let node = TestNode::start().await;
    let mut json_client = RawSocket::connected(&node, "j").await;
    json_client.send_frame(true, BINARY, br#"{"id":2,"ping":{}}"#).await;
    assert_eq!(json_client.next_frame().await, Some((TEXT, br#"{"id":2,"ping":{}}"#.to_vec())));
    json_client.send_frame(true, BINARY, &frame(&[connect_command("x")])).await;
    assert_eq!(json_client.close_code().await, Some(3501));
}

#[actix_web::test]
async fn server_pings_are_empty_replies_and_an_empty_command_pongs() {
    let node = TestNode::start_with(|s| {
        s.client.ping_interval = std::time::Duration::from_secs(1);
        s.client.pong_timeout = std::time::Duration::from_millis(900);
    })
    .await;
    let mut socket = connected(&node, "pinged").await;
    for _ in 0..2 {
        assert_eq!(socket.next_frame().await, Some((BINARY, vec![0])), "a ping is the single byte 0");
        socket.send_frame(true, BINARY, &[0]).await;
    }
    let ping = wire::Command { id: 5, ping: Some(wire::PingRequest {}), ..Default::default() };
    socket.send_frame(true, BINARY, &frame(&[ping])).await;
    assert_eq!(replies(&mut socket).await[0].id, 5, "still connected after answering two pings");
}
