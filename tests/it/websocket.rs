use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// A ping command frame and its reply.
const PING_COMMAND: &str = r#"{"id":7,"ping":{}}"#;

#[actix_web::test]
async fn a_header_declaring_a_huge_frame_closes_with_1009_before_its_payload_arrives() {
    let node = TestNode::start().await;
    // Connected, before connect, and one byte over the 64 KiB default limit.
    for (connect, declared) in [(true, 1u64 << 40), (false, 1 << 40), (true, 65_537)] {
        let mut socket = if connect { RawSocket::connected(&node, "big").await } else { RawSocket::open(&node).await };
        let mut bytes = frame_header(true, TEXT, declared);
        bytes.extend(masked(&[b'x'; 4096]));
        socket.send_raw(&bytes).await;
        assert_eq!(socket.close_code().await, Some(1009), "declared {declared}, connected: {connect}");
    }
    let mut other = node.connect_as("other").await;
    assert_eq!(other.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}

#[actix_web::test]
async fn frames_before_an_oversized_one_are_answered_first() {
    let node = TestNode::start().await;
    let mut socket = RawSocket::connected(&node, "u").await;
    let mut bytes = frame_header(true, TEXT, PING_COMMAND.len() as u64);
    bytes.extend(masked(PING_COMMAND.as_bytes()));
    bytes.extend(frame_header(true, TEXT, 1 << 40));
    socket.send_raw(&bytes).await;
    assert_eq!(socket.next_frame().await, Some((TEXT, br#"{"id":7,"ping":{}}"#.to_vec())));
    assert_eq!(socket.close_code().await, Some(1009));
}

#[actix_web::test]
async fn fragments_count_toward_the_message_size_limit_together() {
    let node = TestNode::start_with(|s| s.websocket.message_size_limit = 1000).await;
    let mut socket = RawSocket::connected(&node, "u").await;
    socket.send_frame(false, TEXT, &[b' '; 600]).await;
    socket.send_frame(true, 0, &[b' '; 600]).await;
    assert_eq!(socket.close_code().await, Some(1009));
}

#[actix_web::test]
async fn a_control_frame_over_125_bytes_closes_with_1002_at_its_header() {
    let node = TestNode::start().await;
    let mut socket = RawSocket::connected(&node, "u").await;
    let mut bytes = frame_header(true, PING, 1 << 30);
    bytes.extend(masked(&[0; 1000]));
    socket.send_raw(&bytes).await;
    assert_eq!(socket.close_code().await, Some(1002));
}

#[actix_web::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let node = TestNode::start().await;
    let mut whole = RawSocket::connected(&node, "u").await;
    whole.send_frame(true, TEXT, b"{\"id\":2,\"ping\":{}}\xff").await;
    assert_eq!(whole.close_code().await, Some(1007));
    let mut fragmented = RawSocket::connected(&node, "u").await;
    fragmented.send_frame(false, TEXT, b"{\"id\":2,").await;
    fragmented.send_frame(true, 0, b"\xc3\x28}").await;
    assert_eq!(fragmented.close_code().await, Some(1007));
}

#[actix_web::test]
async fn the_close_answering_a_client_close_echoes_its_code() {
    let node = TestNode::start().await;
    let mut socket = RawSocket::connected(&node, "u").await;
    let mut payload = 4001u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    socket.send_frame(true, CLOSE, &payload).await;
    assert_eq!(socket.close_code().await, Some(4001));
}

/// Close frames RFC 6455 §5.5.1 and §7.4 forbid get 1002, as gorilla/websocket (Centrifugo's
/// library) answers them: a 1-byte payload, codes that must not be sent (1004-1006, 1015, below
/// 1000, 1016-2999, 5000 and up) and a reason that is not UTF-8. Valid codes are echoed.
#[actix_web::test]
async fn close_frames_with_invalid_codes_or_reasons_get_1002() {
    let node = TestNode::start().await;
    let with_code = |code: u16, reason: &[u8]| {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        payload
    };
    let mut invalid = vec![("1-byte payload".to_owned(), vec![0x03])];
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        invalid.push((format!("code {code}"), with_code(code, b"")));
    }
    invalid.push((
        "reason not UTF-8".to_owned(),
        with_code(1000, &[0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80]),
    ));
    for (name, payload) in invalid {
        let mut socket = RawSocket::connected(&node, "u").await;
        socket.send_frame(true, CLOSE, &payload).await;
        assert_eq!(socket.close_code().await, Some(1002), "{name}");
    }
    for code in [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
        let mut socket = RawSocket::connected(&node, "u").await;
        socket.send_frame(true, CLOSE, &with_code(code, "κόσμε".as_bytes())).await;
        assert_eq!(socket.close_code().await, Some(code), "a valid code {code} is echoed");
    }
    let mut empty = RawSocket::connected(&node, "u").await;
    empty.send_frame(true, CLOSE, &[]).await;
    assert_eq!(empty.close_code().await, Some(1005), "an empty close is answered with an empty close");
    let mut still = RawSocket::connected(&node, "u").await;
    still.send_frame(true, TEXT, PING_COMMAND.as_bytes()).await;
    assert_eq!(still.next_frame().await, Some((TEXT, PING_COMMAND.as_bytes().to_vec())), "the node keeps serving");
}

/// Pings flooded faster than pongs can be written are answered in order without the node
/// buffering more than the socket takes; data after them is still processed.
#[actix_web::test]
async fn a_ping_flood_is_answered_and_the_connection_keeps_working() {
    let node = TestNode::start().await;
    let mut socket = RawSocket::connected(&node, "u").await;
    for n in 0..2000u16 {
        socket.send_frame(true, PING, &n.to_be_bytes()).await;
    }
    socket.send_frame(true, TEXT, PING_COMMAND.as_bytes()).await;
    for n in 0..2000u16 {
        assert_eq!(socket.next_frame().await, Some((PONG, n.to_be_bytes().to_vec())), "pong {n}");
    }
    assert_eq!(socket.next_frame().await, Some((TEXT, PING_COMMAND.as_bytes().to_vec())));
}

#[actix_web::test]
async fn a_frame_delivered_byte_by_byte_is_answered() {
    let node = TestNode::start().await;
    let mut socket = RawSocket::connected(&node, "u").await;
    let mut bytes = frame_header(true, TEXT, PING_COMMAND.len() as u64);
    bytes.extend(masked(PING_COMMAND.as_bytes()));
    for byte in bytes {
        socket.send_raw(&[byte]).await;
    }
    assert_eq!(socket.next_frame().await, Some((TEXT, PING_COMMAND.as_bytes().to_vec())));
}

/// One frame of `count` history commands (cheap to send, each answered after a round trip to
/// the channel).
fn history_flood_frame(count: usize, limit: u32) -> Vec<u8> {
    let lines: Vec<String> = (0..count)
        .map(|n| format!(r#"{{"id":{},"history":{{"channel":"chat:flood","limit":{limit}}}}}"#, n + 10))
        .collect();
    let text = lines.join("\n");
    let mut frame = frame_header(true, TEXT, text.len() as u64);
    frame.extend(masked(text.as_bytes()));
    frame
}

/// Sends frames of history commands (`limit` publications each) without reading until a write
/// stalls for a second (the node stopped reading) or `cap` bytes were sent; returns the bytes sent.
async fn flood_until_stalled(socket: &mut RawSocket, cap: usize, limit: u32) -> usize {
    use tokio::io::AsyncWriteExt;
    let frame = history_flood_frame(1000, limit);
    let mut sent = 0;
    while sent < cap {
        match tokio::time::timeout(Duration::from_secs(1), socket.stream.write_all(&frame)).await {
            Ok(Ok(())) => sent += frame.len(),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    sent
}

#[actix_web::test]
async fn a_client_that_floods_commands_and_reads_nothing_is_no_longer_read() {
    let node = TestNode::start_with(|s| s.websocket.write_timeout = Duration::from_secs(60)).await;
    let mut socket = RawSocket::connected(&node, "flooder").await;
    let subscribe = r#"{"id":2,"subscribe":{"channel":"chat:flood"}}"#;
    socket.send_frame(true, TEXT, subscribe.as_bytes()).await;
    // Before: the node read ~6.6 GB in 20 s, queuing ~12x that in parsed commands. Now it reads
    // only as fast as it answers, and answers only as fast as the socket takes the replies.
    let cap = 400 << 20;
    let sent = flood_until_stalled(&mut socket, cap, 0).await;
    assert!(sent < cap, "the node read all {sent} bytes of a client that reads nothing");
    let mut other = node.connect_as("other").await;
    assert_eq!(other.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}

#[actix_web::test]
async fn replies_the_socket_does_not_take_count_against_queue_max_size() {
    let node = TestNode::start_with(|s| {
        s.client.queue_max_size = 32 * 1024;
        s.websocket.write_timeout = Duration::from_secs(60);
    })
    .await;
    for n in 0..10 {
        node.api_ok("publish", json!({"channel": "chat:flood", "data": {"n": n, "pad": "x".repeat(4000)}})).await;
    }
    let mut socket = RawSocket::connected(&node, "flooder").await;
    let subscribe = r#"{"id":2,"subscribe":{"channel":"chat:flood"}}"#;
    socket.send_frame(true, TEXT, subscribe.as_bytes()).await;
    // One frame of 1,000 history commands, each answered with ~40 KB: far more than the
    // socket's buffers hold while the client reads nothing.
    socket.send_raw(&history_flood_frame(1000, 10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.api_ok("info", json!({})).await["nodes"][0]["num_clients"] != 0 {
        assert!(std::time::Instant::now() < deadline, "the client whose replies pile up was never disconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reading now: the replies the socket held, then 3008.
    assert_eq!(socket.close_code().await, Some(3008));
}

#[actix_web::test]
async fn a_ping_between_fragments_is_answered_and_the_message_still_processed() {
    let node = TestNode::start().await;
    let mut socket = RawSocket::connected(&node, "u").await;
    let (head, tail) = PING_COMMAND.split_at(6);
    socket.send_frame(false, TEXT, head.as_bytes()).await;
    socket.send_frame(true, PING, b"are you there").await;
    socket.send_frame(true, 0, tail.as_bytes()).await;
    assert_eq!(socket.next_frame().await, Some((PONG, b"are you there".to_vec())), "the pong echoes the payload");
    assert_eq!(socket.next_frame().await, Some((TEXT, PING_COMMAND.as_bytes().to_vec())));
}

#[actix_web::test]
async fn protocol_violations_close_with_1002() {
    let node = TestNode::start().await;
    let text_frame = |first: u8| {
        let mut bytes = vec![first, 0x80 | PING_COMMAND.len() as u8, 0, 0, 0, 0];
        bytes.extend_from_slice(PING_COMMAND.as_bytes());
        bytes
    };
    let mut unmasked = vec![0x81, PING_COMMAND.len() as u8];
    unmasked.extend_from_slice(PING_COMMAND.as_bytes());
    let cases = [
        ("RSV1 set without an extension", text_frame(0x80 | 0x40 | TEXT)),
        ("reserved opcode 3", text_frame(0x80 | 3)),
        ("unmasked client frame", unmasked),
    ];
    for (name, bytes) in cases {
        let mut socket = RawSocket::connected(&node, "u").await;
        socket.send_raw(&bytes).await;
        assert_eq!(socket.close_code().await, Some(1002), "{name}");
    }
}

/// RFC 7692 §7.2.1: a raw deflate of `data` without the sync-flush tail.
fn deflated(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("deflate");
    encoder.flush().expect("deflate");
    let mut out = encoder.get_ref().clone();
    out.truncate(out.len() - 4);
    out
}

fn inflated(data: &[u8]) -> String {
    use std::io::Read;
    let mut whole = data.to_vec();
    whole.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut text = String::new();
    // The stream has no final block: reading stops with an error at its end, after the text.
    let _ = flate2::read::DeflateDecoder::new(whole.as_slice()).read_to_string(&mut text);
    text
}

const RSV1: u8 = 0x40;
const DEFLATE_OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// permessage-deflate (`websocket.compression`): answered without context takeover; compressed
/// commands are inflated; pushes at or over `compression_min_size` go out compressed (RSV1),
/// smaller replies as they are.
#[actix_web::test]
async fn permessage_deflate_compresses_both_ways_when_enabled() {
    let node = TestNode::start_with(|settings| {
        settings.websocket.compression = true;
        settings.websocket.compression_min_size = 64;
    })
    .await;
    let (mut socket, head) = RawSocket::open_with(&node, "", DEFLATE_OFFER).await;
    let expected =
        "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    assert!(head.to_ascii_lowercase().contains(expected), "{head}");
    let connect = json!({"id": 1, "connect": {"token": token(json!({"sub": "zip"}))}}).to_string();
    socket.send_frame(true, RSV1 | TEXT, &deflated(connect.as_bytes())).await;
    let (first, reply) = socket.next_frame_with_flags().await.expect("connect reply");
    let reply = if first & RSV1 != 0 { inflated(&reply) } else { String::from_utf8(reply).expect("UTF-8") };
    assert!(reply.contains(r#""connect":{"client""#), "{reply}");
    // Two fragments, the first compressed: the message is inflated whole.
    let subscribe = deflated(br#"{"id":2,"subscribe":{"channel":"zipped"}}"#);
    let (start, rest) = subscribe.split_at(5);
    socket.send_frame(false, RSV1 | TEXT, start).await;
    socket.send_frame(true, 0, rest).await;
    let (first, reply) = socket.next_frame_with_flags().await.expect("subscribe reply");
    assert_eq!(
        (first, reply.as_slice()),
        (0x80 | TEXT, &br#"{"id":2,"subscribe":{}}"#[..]),
        "under 64 bytes: as it is"
    );
    let text = "gyre ".repeat(400);
    node.api_ok("publish", json!({"channel": "zipped", "data": {"text": text}})).await;
    let (first, push) = socket.next_frame_with_flags().await.expect("push");
    assert_eq!(first, 0x80 | RSV1 | TEXT, "a large push is compressed");
    assert!(push.len() < 300, "{} bytes on the wire for 2,000 of text", push.len());
    let push = inflated(&push);
    assert!(push.contains(&format!(r#""data":{{"text":"{text}"}}"#)), "{push}");
}

/// Without `websocket.compression` the offer is declined and a compressed frame is a protocol
/// error (1002); with it, a message that inflates past the limit closes with 1009.
#[actix_web::test]
async fn compressed_frames_are_refused_when_not_negotiated_or_too_big_inflated() {
    let node = TestNode::start().await;
    let (mut socket, head) = RawSocket::open_with(&node, "", DEFLATE_OFFER).await;
    assert!(!head.to_ascii_lowercase().contains("sec-websocket-extensions"), "{head}");
    socket.send_frame(true, RSV1 | TEXT, &deflated(PING_COMMAND.as_bytes())).await;
    assert_eq!(socket.close_code().await, Some(1002));

    let node = TestNode::start_with(|settings| settings.websocket.compression = true).await;
    let (mut socket, _) = RawSocket::open_with(&node, "", DEFLATE_OFFER).await;
    // 1 MiB of spaces deflates to a few kilobytes (under the 64 KiB wire limit); the inflated
    // limit is 10 x 64 KiB.
    let bomb = deflated(&vec![b' '; 1 << 20]);
    assert!(bomb.len() < 65_536, "{}", bomb.len());
    socket.send_frame(true, RSV1 | TEXT, &bomb).await;
    assert_eq!(socket.close_code().await, Some(1009));
}
