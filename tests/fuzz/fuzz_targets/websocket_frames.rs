//! The bytes of a WebSocket connection as gyre reads them: the frame guard splits them into
//! frames (refusing oversized ones at the header) and actix-http's codec decodes what passes.
//! The first byte sets the read size, so every split of a header is tried.
#![no_main]

use actix_codec::Decoder;
use actix_http::ws::Codec;
use bytes::BytesMut;
use gyre::client::frame_guard::{FrameGuard, Span};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else { return };
    let read_size = usize::from(first % 64) + 1;
    let mut guard = FrameGuard::new(LIMIT);
    let mut codec = Codec::new().max_size(LIMIT);
    let mut decoder_buffer = BytesMut::new();
    for mut read in stream.chunks(read_size) {
        while !read.is_empty() {
            match guard.next(read) {
                Span::HeaderPart(taken) => read = &read[taken..],
                Span::BufferedHeader { taken } => {
                    decoder_buffer.extend_from_slice(&guard.take_buffered_header());
                    read = &read[taken..];
                }
                Span::Frame(len) => {
                    assert!(len > 0 && len <= read.len());
                    decoder_buffer.extend_from_slice(&read[..len]);
                    read = &read[len..];
                }
                Span::Refused(refusal) => {
                    decoder_buffer.extend_from_slice(refusal.poison());
                    while let Ok(Some(_)) = codec.decode(&mut decoder_buffer) {}
                    assert!(codec.decode(&mut decoder_buffer).is_err(), "the poison bytes must fail the decoder");
                    return;
                }
            }
            // The decoder never holds more than the frame being passed plus one header.
            while let Ok(Some(_)) = codec.decode(&mut decoder_buffer) {}
            assert!(decoder_buffer.len() <= LIMIT + 14 || codec.decode(&mut decoder_buffer).is_err());
        }
    }
});
