//! A JSON client frame: commands taken out line by line, as a session does.
#![no_main]

use bytestring::ByteString;
use gyre::protocol::frame::PendingCommands;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut pending = PendingCommands::default();
    pending.push_json(ByteString::from(text));
    let mut taken = 0;
    while let Some(next) = pending.next_command() {
        taken += 1;
        assert!(taken <= data.len() + 1, "more commands than lines");
        if let Ok((command, size)) = next {
            assert!(size <= data.len());
            let _ = command.frame_type();
            let _ = command.into_request();
        }
    }
});
