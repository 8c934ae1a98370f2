//! Config files (JSON, YAML or TOML, picked by the first byte) through the whole loader, and
//! duration strings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let _ = gyre::config::duration::parse(text);
    let format = ["json", "yaml", "toml"][usize::from(pick) % 3];
    let _ = gyre::config::load::load_text(text, format);
});
