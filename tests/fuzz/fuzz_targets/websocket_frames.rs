//! The bytes of a WebSocket connection as gyre reads them: the decoder takes them in reads of
//! any size (the first byte sets the size, so every split of a header is tried, and whether
//! permessage-deflate was negotiated). No input may panic, a decoded message never exceeds the
//! limits, and nothing is decoded after a refusal.
#![no_main]

use bytes::Bytes;
use gyre::client::transport::ws_frames::{Decoder, DecoderSettings, Inbound};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1024;
const INFLATED_LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else { return };
    let read_size = usize::from(first % 64) + 1;
    let deflate = first & 0x80 != 0;
    let mut decoder = Decoder::new(DecoderSettings { limit: LIMIT, inflated_limit: INFLATED_LIMIT, deflate });
    let mut refused = false;
    for read in stream.chunks(read_size) {
        let mut input = Bytes::copy_from_slice(read);
        while let Some(item) = decoder.decode(&mut input) {
            assert!(!refused, "decoded {item:?} after a refusal");
            let limit = if deflate { INFLATED_LIMIT } else { LIMIT };
            match &item {
                Inbound::Text(text) => assert!(text.len() <= limit),
                Inbound::Binary(bytes) => assert!(bytes.len() <= limit),
                Inbound::Ping(payload) => assert!(payload.len() <= 125),
                Inbound::Refused(_) => refused = true,
                Inbound::Pong | Inbound::Close(_) => {}
            }
        }
        assert!(input.is_empty() || refused, "a decoder that has not failed takes every byte");
    }
});
