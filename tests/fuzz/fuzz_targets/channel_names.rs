//! Channel names against namespace rules (with a channel_regex), and `channels` glob patterns.
#![no_main]

use std::sync::OnceLock;

use gyre::channel::ChannelRules;
use gyre::config::{ChannelOptions, NamespaceSettings, Settings};
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static ChannelRules {
    static RULES: OnceLock<ChannelRules> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut settings = Settings::default();
        settings.channel.namespaces = vec![NamespaceSettings {
            name: "chat".into(),
            options: ChannelOptions { channel_regex: "^[a-z0-9_-]{1,20}$".into(), ..Default::default() },
        }];
        ChannelRules::from_settings(&settings).expect("valid rules")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = rules().resolve(text);
    let _ = rules().resolve_client(text);
    let (pattern, name) = text.split_once('\n').unwrap_or((text, "chat:room"));
    if let Some(glob) = gyre::api::compile_glob(pattern) {
        let _ = glob.is_match(name);
    }
});
