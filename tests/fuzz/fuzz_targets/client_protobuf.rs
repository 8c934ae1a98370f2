//! A Protobuf client frame: length-delimited commands, as a session takes them.
#![no_main]

use bytes::Bytes;
use gyre::protocol::frame::PendingCommands;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut pending = PendingCommands::default();
    pending.push_protobuf(Bytes::copy_from_slice(data));
    let mut used = 0;
    while let Some(next) = pending.next_command() {
        match next {
            Ok((command, size)) => {
                used += size;
                assert!(used <= data.len(), "commands cover more bytes than the frame has");
                let _ = command.into_request();
            }
            Err(_) => break,
        }
    }
});
