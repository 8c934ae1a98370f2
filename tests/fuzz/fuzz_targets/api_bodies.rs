//! HTTP API request bodies for every method (the first byte picks the method).
#![no_main]

use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 13] = [
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "refresh",
    "history",
    "history_remove",
    "presence",
    "presence_stats",
    "channels",
    "info",
    "rpc",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let method = METHODS[usize::from(pick) % METHODS.len()];
    assert!(gyre::api::decode_request(method, body).is_some());
});
