//! What the HTTP transports read from a request: `/emulation` bodies (JSON and Protobuf), the
//! connect request of the unidirectional transports, and `cf_connect` in a query string. The
//! first byte picks Protobuf or JSON; the input is also tried as the query string.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let query = String::from_utf8_lossy(body);
    assert!(gyre::client::transport::http::decode_request_inputs(body, pick & 1 == 1, &query) <= 3);
});
