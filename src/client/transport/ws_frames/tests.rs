use std::io::Write;

use super::*;

const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// A masked client frame: `first` is FIN/RSV/opcode.
fn frame_with(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![first];
    match payload.len() {
        len @ 0..=125 => bytes.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            bytes.push(0x80 | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            bytes.push(0x80 | 127);
            bytes.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    bytes.extend_from_slice(&MASK);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    bytes
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_with(FIN | opcode, payload)
}

/// A header alone declaring `payload` bytes.
fn header(first: u8, payload: u64) -> Vec<u8> {
    let mut bytes = vec![first, 0x80 | 127];
    bytes.extend_from_slice(&payload.to_be_bytes());
    bytes.extend_from_slice(&MASK);
    bytes
}

fn settings(limit: usize, deflate: bool) -> DecoderSettings {
    DecoderSettings { limit, inflated_limit: limit * 10, deflate }
}

/// Feeds `stream` in reads of `chunk` bytes; everything decoded, up to and including a refusal.
fn decode_all(settings: DecoderSettings, stream: &[u8], chunk: usize) -> Vec<Inbound> {
    let mut decoder = Decoder::new(settings);
    let mut items = Vec::new();
    for read in stream.chunks(chunk) {
        let mut input = Bytes::copy_from_slice(read);
        while let Some(item) = decoder.decode(&mut input) {
            let refused = matches!(item, Inbound::Refused(_));
            items.push(item);
            if refused {
                return items;
            }
        }
        assert!(input.is_empty(), "a decoder that has not failed takes every byte");
    }
    items
}

fn text(s: &str) -> Inbound {
    Inbound::Text(ByteString::from(s))
}

fn refused(disconnect: Disconnect) -> Inbound {
    Inbound::Refused(disconnect)
}

/// RFC 7692 §7.2.1: a raw deflate of `data` with the sync-flush tail removed.
fn deflated(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.flush().unwrap();
    let mut out = encoder.get_ref().clone();
    assert!(out.ends_with(&DEFLATE_TAIL));
    out.truncate(out.len() - 4);
    out
}

#[test]
fn decodes_messages_fragments_and_control_frames_however_the_bytes_are_split() {
    let long = "x".repeat(70_000);
    let stream = [
        frame(OPCODE_TEXT, b"hello"),
        frame(OPCODE_PING, b"p"),
        frame(OPCODE_BINARY, &[0xFF, 0, 7]),
        frame_with(OPCODE_TEXT, "caf\u{e9} ".as_bytes()),
        // A control frame between fragments, and a character split across two fragments.
        frame(OPCODE_PONG, b""),
        frame_with(OPCODE_CONTINUATION, &"\u{1F600}".as_bytes()[..2]),
        frame(OPCODE_CONTINUATION, &"\u{1F600}".as_bytes()[2..]),
        frame(OPCODE_TEXT, long.as_bytes()),
        frame(OPCODE_TEXT, b""),
        frame(OPCODE_CLOSE, &[0x03, 0xE8, b'b', b'y', b'e']),
    ]
    .concat();
    let expected = vec![
        text("hello"),
        Inbound::Ping(Bytes::from_static(b"p")),
        Inbound::Binary(Bytes::from_static(&[0xFF, 0, 7])),
        Inbound::Pong,
        text("caf\u{e9} \u{1F600}"),
        text(&long),
        text(""),
        Inbound::Close(Some(1000)),
    ];
    for chunk in [1, 2, 3, 5, 13, 14, 15, 100, 4096, 1 << 20] {
        assert_eq!(decode_all(settings(100_000, false), &stream, chunk), expected, "reads of {chunk} bytes");
    }
}

#[test]
fn refuses_a_message_over_the_limit_from_its_header_before_its_payload_arrives() {
    for declared in [65_537u64, 1 << 40, u64::MAX] {
        let mut stream = frame(OPCODE_TEXT, b"first");
        stream.extend(header(FIN | OPCODE_BINARY, declared));
        for chunk in [1, 7, 1000] {
            let items = decode_all(settings(65_536, false), &stream, chunk);
            assert_eq!(items, vec![text("first"), refused(Disconnect::MESSAGE_TOO_BIG)], "{declared} in {chunk}");
        }
    }
    // Fragments count together.
    let stream = [frame_with(OPCODE_TEXT, &[b'a'; 40_000]), frame(OPCODE_CONTINUATION, &[b'a'; 30_000])].concat();
    assert_eq!(decode_all(settings(65_536, false), &stream, 512), vec![refused(Disconnect::MESSAGE_TOO_BIG)]);
    let at_limit = frame(OPCODE_TEXT, &[b'a'; 65_536]);
    assert_eq!(decode_all(settings(65_536, false), &at_limit, 4096).len(), 1);
}

#[test]
fn protocol_errors_close_with_1002_and_nothing_after_them_is_decoded() {
    let unmasked = {
        let mut bytes = frame(OPCODE_TEXT, b"hi");
        bytes[1] &= 0x7F;
        bytes
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("control frame over 125 bytes", frame(OPCODE_PING, &[0; 126])),
        ("fragmented control frame", frame_with(OPCODE_PING, b"")),
        ("unmasked", unmasked),
        ("RSV1 without permessage-deflate", frame(RSV1 | OPCODE_TEXT, b"hi")),
        ("RSV2", frame(0x20 | OPCODE_TEXT, b"hi")),
        ("reserved opcode", frame(0x3, b"")),
        ("continuation with nothing to continue", frame(OPCODE_CONTINUATION, b"x")),
        ("a new message inside a fragmented one", [frame_with(OPCODE_TEXT, b"a"), frame(OPCODE_TEXT, b"b")].concat()),
        ("close with one byte", frame(OPCODE_CLOSE, &[3])),
        ("close with a reserved code", frame(OPCODE_CLOSE, &1005u16.to_be_bytes())),
        ("close with a reason that is not UTF-8", frame(OPCODE_CLOSE, &[3, 232, 0xFF])),
    ];
    for (case, bytes) in cases {
        let stream = [bytes, frame(OPCODE_TEXT, b"after")].concat();
        assert_eq!(decode_all(settings(1024, false), &stream, 3), vec![refused(Disconnect::PROTOCOL_ERROR)], "{case}");
    }
}

#[test]
fn text_that_is_not_utf8_closes_with_1007_binary_is_passed_on() {
    let stream = [frame(OPCODE_BINARY, &[0xC3]), frame(OPCODE_TEXT, &[0xC3, 0x28])].concat();
    let items = decode_all(settings(1024, false), &stream, 64);
    assert_eq!(items, vec![Inbound::Binary(Bytes::from_static(&[0xC3])), refused(Disconnect::INVALID_UTF8)]);
}

#[test]
fn compressed_messages_are_inflated_whole_or_fragmented() {
    let json = r#"{"id":1,"publish":{"channel":"news","data":{"text":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}}"#;
    let packed = deflated(json.as_bytes());
    let (head, tail) = packed.split_at(packed.len() / 2);
    let stream = [
        frame(RSV1 | OPCODE_TEXT, &packed),
        frame(OPCODE_TEXT, b"plain"),
        frame_with(RSV1 | OPCODE_BINARY, head),
        frame(OPCODE_CONTINUATION, tail),
    ]
    .concat();
    let expected = vec![text(json), text("plain"), Inbound::Binary(Bytes::copy_from_slice(json.as_bytes()))];
    for chunk in [1, 9, 4096] {
        assert_eq!(decode_all(settings(1024, true), &stream, chunk), expected);
    }
    // RSV1 marks a message's first frame only.
    let stream = [frame_with(RSV1 | OPCODE_TEXT, head), frame(RSV1 | OPCODE_CONTINUATION, tail)].concat();
    assert_eq!(decode_all(settings(1024, true), &stream, 64), vec![refused(Disconnect::PROTOCOL_ERROR)]);
}

#[test]
fn a_compressed_message_that_inflates_past_the_limit_is_refused_as_it_inflates() {
    let bomb = deflated(&vec![b'a'; 10_000_000]);
    assert!(bomb.len() < 20_000, "{}", bomb.len());
    let limits = DecoderSettings { limit: 65_536, inflated_limit: 100_000, deflate: true };
    let items = decode_all(limits, &frame(RSV1 | OPCODE_TEXT, &bomb), 4096);
    assert_eq!(items, vec![refused(Disconnect::MESSAGE_TOO_BIG)]);
    let at_limit = deflated(&vec![b'a'; 100_000]);
    assert_eq!(decode_all(limits, &frame(RSV1 | OPCODE_TEXT, &at_limit), 4096), vec![text(&"a".repeat(100_000))]);
    let garbage = decode_all(limits, &frame(RSV1 | OPCODE_TEXT, &[0xFF; 40]), 64);
    assert!(matches!(garbage.as_slice(), [Inbound::Refused(_)]), "{garbage:?}");
}

#[test]
fn outgoing_data_frames_are_compressed_once_and_control_frames_never() {
    use crate::protocol::Frame;
    let settings = CompressionSettings { min_size: 0, level: 1 };
    let payload = format!(r#"{{"push":{{"channel":"news","pub":{{"data":"{}"}}}}}}"#, "ab".repeat(500));
    let wire = Frame::text(&payload).wire();
    let compressed = compress_frame(&wire, settings);
    let (first, deflated_payload) = server_frame_payload(&compressed).unwrap();
    assert_eq!(first, FIN | RSV1 | OPCODE_TEXT);
    assert!(deflated_payload.len() < payload.len() / 10, "{}", deflated_payload.len());
    assert_eq!(inflate(deflated_payload, 1 << 20).unwrap(), payload.as_bytes());
    // The same frame again (the next subscriber on this thread) is not compressed again.
    assert_eq!(compress_frame(&wire, settings).as_ptr(), compressed.as_ptr());
    // Below the minimum size, or not smaller compressed, or a control frame: as it is.
    let small = Frame::text("{}").wire();
    assert_eq!(compress_frame(&small, CompressionSettings { min_size: 3, level: 1 }), small);
    let ping = Frame::ping().wire();
    assert_eq!(compress_frame(&ping, settings), ping);
    let close = Frame::close(Some(3000), "a reason that is long enough to be worth it in theory").wire();
    assert_eq!(compress_frame(&close, settings), close);
}

#[test]
fn permessage_deflate_is_answered_without_context_takeover() {
    let answer = Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    assert_eq!(negotiate_deflate(["permessage-deflate; client_max_window_bits"]), answer);
    assert_eq!(negotiate_deflate(["x-webkit-deflate-frame", "permessage-deflate"]), answer);
    assert_eq!(
        negotiate_deflate([
            "permessage-deflate; server_max_window_bits=10, permessage-deflate; server_no_context_takeover"
        ]),
        answer
    );
    assert_eq!(negotiate_deflate(["permessage-deflate; server_max_window_bits=10"]), None);
    assert_eq!(negotiate_deflate(["permessage-deflate; unknown_param"]), None);
    assert_eq!(negotiate_deflate(["foo"]), None);
    assert_eq!(negotiate_deflate([]), None);
}
