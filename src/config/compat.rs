//! Centrifugo v6 keys that gyre does not implement. They are not "unknown" (a Centrifugo config
//! may carry them), so they get their own warning; the few whose silent omission would weaken
//! security or change what clients see (TLS, regex claim checks) are refused instead.

use serde_json::Value;

use super::schema::{Findings, KeyPath};

/// Keys Centrifugo v6 has and gyre ignores. `*` stands for a channel options object
/// (`channel.without_namespace` or any `channel.namespaces[]` entry).
const IGNORED: &[&str] = &[
    // Whole sections and top-level keys.
    "debug",
    "init",
    "usage_stats",
    "pid_file",
    "enable_unreleased_features",
    "opentelemetry",
    "graphite",
    "webtransport",
    "uni_websocket.read_buffer_size",
    "uni_websocket.write_buffer_size",
    "uni_websocket.use_write_buffer_pool",
    "consumers",
    "map_broker",
    "shared_poll",
    "controller",
    "redis",
    "license",
    "singleflight",
    "database",
    "cache",
    "clickhouse_analytics",
    "push_notifications",
    "user_status",
    "user_block",
    "token_revoke",
    "user_tokens_invalidate",
    "distributed_rate_limit",
    "state",
    "brokers",
    "presence_managers",
    // Inside supported sections.
    "http_server.tls_autocert",
    "http_server.http3",
    "http_server.h2c_external",
    "node.info_metrics_aggregate_interval",
    "engine.redis",
    "broker.redis",
    "broker.postgres",
    "broker.nats.tls",
    "broker.nats.allow_wildcards",
    "broker.nats.raw_mode",
    "presence_manager.redis",
    "presence_manager.nats.tls",
    "client.channel_position_max_time_lag",
    "client.rate_limit.user_command",
    "client.write_delay",
    "client.reply_without_queue",
    "client.max_messages_in_frame",
    "client.queue_initial_cap",
    "channel.proxy.map_publish",
    "channel.proxy.map_remove",
    "channel.proxy.shared_poll_refresh",
    "channel.proxy.cache_empty",
    "channel.proxy.state",
    "channel.patterns",
    "channel.namespaces.[].pattern",
    "websocket.read_buffer_size",
    "websocket.write_buffer_size",
    "websocket.use_write_buffer_pool",
    "websocket.compression_prepared_message_cache_size",
    "prometheus.instrument_http_handlers",
    "prometheus.recovered_publications_histogram",
    "prometheus.native_histograms",
    "prometheus.channel_namespace_resolution",
    // Channel options (proxies, PRO and experimental features; v5 proxy flag names too).
    "*.cache_empty_proxy_name",
    "*.proxy_subscribe",
    "*.proxy_publish",
    "*.proxy_sub_refresh",
    "*.proxy_subscribe_stream",
    "*.proxy_subscribe_stream_bidirectional",
    "*.map",
    "*.shared_poll",
    "*.map_clients_presence_channel_prefix",
    "*.map_users_presence_channel_prefix",
    "*.subscribe_cel",
    "*.publish_cel",
    "*.presence_cel",
    "*.history_cel",
    "*.keep_latest_publication",
    "*.shared_position_sync",
    "*.state_events",
    "*.broker_name",
    "*.presence_manager_name",
];

/// How a refused key is recognised as switched on.
enum Trigger {
    /// `true`, or an object whose `enabled` is true.
    Enabled,
}

/// Ignoring these would silently weaken the node, so they are errors when switched on.
const REFUSED: &[(&str, Trigger, &str)] = &[(
    "http_server.tls_autocert",
    Trigger::Enabled,
    "automatic certificates (ACME) are not supported by gyre: they need a public address the ACME server can reach; give a certificate with http_server.tls.cert_pem and key_pem, or terminate TLS in a reverse proxy",
)];

/// The path as a pattern: channel option objects collapse to `*`.
fn normalized(path: &KeyPath) -> String {
    let segments = path.pattern();
    let rest = match segments.as_slice() {
        [channel, scope, rest @ ..] if channel == "channel" && scope == "without_namespace" => Some(rest),
        [channel, list, index, rest @ ..] if channel == "channel" && list == "namespaces" && index == "[]" => {
            // `pattern` is a namespace key, not a channel option.
            if rest.first().map(String::as_str) == Some("pattern") {
                None
            } else {
                Some(rest)
            }
        }
        _ => None,
    };
    match rest {
        Some(rest) if !rest.is_empty() => format!("*.{}", rest.join(".")),
        _ => segments.join("."),
    }
}

fn switched_on(trigger: &Trigger, value: &Value) -> bool {
    match trigger {
        Trigger::Enabled => match value {
            Value::Bool(b) => *b,
            Value::Object(map) => match map.get("enabled") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => super::schema::parse_bool(s.trim()).unwrap_or(false),
                Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
                _ => false,
            },
            _ => false,
        },
    }
}

/// Whether a key is one Centrifugo v6 has and gyre ignores.
pub(crate) fn is_ignored(path: &KeyPath) -> bool {
    let normalized = normalized(path);
    IGNORED.iter().any(|pattern| normalized == *pattern || normalized.starts_with(&format!("{pattern}.")))
}

/// Reports a key that is not part of gyre's [`super::Settings`]: refused (an error), ignored (a
/// known Centrifugo key gyre lacks: a warning) or unknown (a warning, and listed for
/// `checkconfig --strict`).
pub(crate) fn report_foreign_key(path: &KeyPath, value: &Value, label: &str, out: &mut Findings) {
    let normalized = normalized(path);
    if let Some((_, _, reason)) =
        REFUSED.iter().find(|(pattern, trigger, _)| normalized == *pattern && switched_on(trigger, value))
    {
        out.errors.push(format!("{label}{path}: {reason}"));
    } else if is_ignored(path) {
        out.warnings.push(format!("{label}{path}: a Centrifugo option gyre does not support; ignored"));
    } else {
        // The value is never shown: a misspelled key may well hold a secret.
        out.warnings.push(format!("{label}unknown key {path}; ignored"));
        out.unknown_keys.push(path.to_string());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report(keys: &[&str], value: Value) -> Findings {
        let mut out = Findings::default();
        report_foreign_key(&KeyPath::of(keys), &value, "", &mut out);
        out
    }

    #[test]
    fn centrifugo_options_gyre_lacks_are_warnings_not_unknown() {
        let out = report(&["graphite"], json!({"enabled": true}));
        assert_eq!(out.warnings.len(), 1);
        assert!(out.unknown_keys.is_empty() && out.errors.is_empty());

        let mut path = KeyPath::of(&["channel", "namespaces"]);
        path.push_index(1);
        path.push_key("keep_latest_publication");
        let mut out = Findings::default();
        report_foreign_key(&path, &json!(true), "", &mut out);
        assert!(out.unknown_keys.is_empty(), "{out:?}");
        assert!(out.warnings[0].contains("channel.namespaces[1].keep_latest_publication"));
    }

    #[test]
    fn unknown_keys_are_listed_and_secrets_hidden() {
        let out = report(&["client", "tokn"], json!("x"));
        assert_eq!(out.unknown_keys, vec!["client.tokn"]);
        let out = report(&["client", "api_kye"], json!("hunter2"));
        assert_eq!(out.warnings, vec!["unknown key client.api_kye; ignored"]);
    }

    #[test]
    fn switched_on_autocert_is_refused() {
        let out = report(&["http_server", "tls_autocert"], json!({"enabled": true, "host_whitelist": ["a"]}));
        assert_eq!(out.errors.len(), 1);
        assert!(out.errors[0].starts_with("http_server.tls_autocert: automatic certificates (ACME) are not supported"));
        let out = report(&["http_server", "tls_autocert"], json!({"enabled": false}));
        assert!(out.errors.is_empty());
    }
}
