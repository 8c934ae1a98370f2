//! What another node, or anyone who can publish on NATS, can send: channel and control
//! envelopes, and JetStream history records (headers from the first line, payload after it).
#![no_main]

use gyre::cluster::envelope::{ChannelMessage, ControlMessage};
use gyre::cluster::history::StoredMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ChannelMessage>(data);
    let _ = serde_json::from_slice::<ControlMessage>(data);
    let (head, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let mut headers = async_nats::HeaderMap::new();
    for field in String::from_utf8_lossy(head).split(';') {
        if let Some((name, value)) = field.split_once('=') {
            if let (Ok(name), Ok(value)) =
                (name.parse::<async_nats::HeaderName>(), value.parse::<async_nats::HeaderValue>())
            {
                headers.insert(name, value);
            }
        }
    }
    let _ = StoredMessage::decode(7, Some(&headers), payload);
});
