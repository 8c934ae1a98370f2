//! Fossil delta patches: any source and target give a patch that applies back to the target,
//! and applying arbitrary bytes as a patch fails cleanly (it is the SDKs' decoder's input, and
//! gyre's own check in tests).
#![no_main]

use gyre::protocol::fossil;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte says how much of the rest is the source.
    let Some((&first, rest)) = data.split_first() else { return };
    let (source, target) = rest.split_at(usize::from(first).min(rest.len()));
    let patch = fossil::create(source, target);
    assert_eq!(fossil::apply(source, &patch).as_deref(), Ok(target), "a patch must apply to its source");
    let _ = fossil::apply(source, target);
});
