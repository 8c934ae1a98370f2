//! Centrifugo v5 flat keys, mapped to v6 paths the way the official converter does
//! (`centrifugal.dev/src/components/converterv6.jsx`; protocol-server.md §3.5, §3.6).
//!
//! A file may mix both generations: a top-level key is read as v5 only when it is a v5 key and
//! its value does not look like the v6 section of the same name (`engine: "memory"` is v5,
//! `engine: {type: memory}` is v6; `prometheus: true` is v5, `prometheus: {...}` is v6). When
//! both set the same key, the v6 value wins.

use serde_json::{json, Value};

use super::schema::{get_path, set_path, Findings, Kind};

/// v5 key → v6 path, for keys other than the top-level channel options (those are derived from
/// the schema: every `channel.without_namespace` option).
const MAP: &[(&str, &str)] = &[
    ("name", "node.name"),
    ("address", "http_server.address"),
    ("port", "http_server.port"),
    ("internal_address", "http_server.internal_address"),
    ("internal_port", "http_server.internal_port"),
    ("log_level", "log.level"),
    ("log_file", "log.file"),
    ("shutdown_timeout", "shutdown.timeout"),
    ("node_info_metrics_aggregate_interval", "node.info_metrics_aggregate_interval"),
    // Engine and broker (`engine` and `broker` strings are handled separately).
    ("nats_url", "broker.nats.url"),
    ("nats_prefix", "broker.nats.prefix"),
    ("nats_dial_timeout", "broker.nats.dial_timeout"),
    ("nats_write_timeout", "broker.nats.write_timeout"),
    ("nats_allow_wildcards", "broker.nats.allow_wildcards"),
    ("nats_raw_mode", "broker.nats.raw_mode"),
    // Client.
    ("allowed_origins", "client.allowed_origins"),
    ("client_insecure", "client.insecure"),
    ("client_insecure_skip_token_signature_verify", "client.insecure_skip_token_signature_verify"),
    ("client_user_id_http_header", "client.user_id_http_header"),
    ("allow_anonymous_connect_without_token", "client.allow_anonymous_connect_without_token"),
    ("disallow_anonymous_connection_tokens", "client.disallow_anonymous_connection_tokens"),
    ("ping_interval", "client.ping_interval"),
    ("pong_timeout", "client.pong_timeout"),
    ("client_expired_close_delay", "client.expired_close_delay"),
    ("client_expired_sub_close_delay", "client.expired_sub_close_delay"),
    ("client_stale_close_delay", "client.stale_close_delay"),
    ("client_channel_limit", "client.channel_limit"),
    ("client_queue_max_size", "client.queue_max_size"),
    ("client_presence_update_interval", "client.presence_update_interval"),
    ("client_user_connection_limit", "client.user_connection_limit"),
    ("client_concurrency", "client.concurrency"),
    ("client_channel_position_check_delay", "client.channel_position_check_delay"),
    ("client_channel_position_max_time_lag", "client.channel_position_max_time_lag"),
    ("client_connection_limit", "client.connection_limit"),
    ("client_connection_rate_limit", "client.connection_rate_limit"),
    ("client_connect_include_server_time", "client.connect_include_server_time"),
    ("client_history_max_publication_limit", "client.history_max_publication_limit"),
    ("client_recovery_max_publication_limit", "client.recovery_max_publication_limit"),
    ("user_subscribe_to_personal", "client.subscribe_to_user_personal_channel.enabled"),
    ("user_personal_channel_namespace", "client.subscribe_to_user_personal_channel.personal_channel_namespace"),
    ("user_personal_single_connection", "client.subscribe_to_user_personal_channel.single_connection"),
    // Tokens.
    ("token_hmac_secret_key", "client.token.hmac_secret_key"),
    ("token_rsa_public_key", "client.token.rsa_public_key"),
    ("token_ecdsa_public_key", "client.token.ecdsa_public_key"),
    ("token_jwks_public_endpoint", "client.token.jwks_public_endpoint"),
    ("token_audience", "client.token.audience"),
    ("token_audience_regex", "client.token.audience_regex"),
    ("token_issuer", "client.token.issuer"),
    ("token_issuer_regex", "client.token.issuer_regex"),
    ("token_user_id_claim", "client.token.user_id_claim"),
    ("separate_subscription_token_config", "client.subscription_token.enabled"),
    ("subscription_token_hmac_secret_key", "client.subscription_token.hmac_secret_key"),
    ("subscription_token_rsa_public_key", "client.subscription_token.rsa_public_key"),
    ("subscription_token_ecdsa_public_key", "client.subscription_token.ecdsa_public_key"),
    ("subscription_token_jwks_public_endpoint", "client.subscription_token.jwks_public_endpoint"),
    ("subscription_token_audience", "client.subscription_token.audience"),
    ("subscription_token_audience_regex", "client.subscription_token.audience_regex"),
    ("subscription_token_issuer", "client.subscription_token.issuer"),
    ("subscription_token_issuer_regex", "client.subscription_token.issuer_regex"),
    ("subscription_token_user_id_claim", "client.subscription_token.user_id_claim"),
    // Channels.
    ("namespaces", "channel.namespaces"),
    ("global_history_meta_ttl", "channel.history_meta_ttl"),
    ("channel_max_length", "channel.max_length"),
    ("channel_private_prefix", "channel.private_prefix"),
    ("channel_namespace_boundary", "channel.namespace_boundary"),
    ("channel_user_boundary", "channel.user_boundary"),
    ("channel_user_separator", "channel.user_separator"),
    ("proxy_subscribe", "channel.without_namespace.subscribe_proxy_enabled"),
    ("proxy_publish", "channel.without_namespace.publish_proxy_enabled"),
    ("proxy_sub_refresh", "channel.without_namespace.sub_refresh_proxy_enabled"),
    ("proxy_subscribe_stream", "channel.without_namespace.subscribe_stream_proxy_enabled"),
    ("proxy_subscribe_stream_bidirectional", "channel.without_namespace.subscribe_stream_proxy_bidirectional"),
    ("subscribe_proxy_name", "channel.without_namespace.subscribe_proxy_name"),
    ("publish_proxy_name", "channel.without_namespace.publish_proxy_name"),
    ("sub_refresh_proxy_name", "channel.without_namespace.sub_refresh_proxy_name"),
    ("subscribe_stream_proxy_name", "channel.without_namespace.subscribe_stream_proxy_name"),
    // RPC.
    ("rpc_ping", "rpc.ping.enabled"),
    ("rpc_ping_method", "rpc.ping.method"),
    ("rpc_namespace_boundary", "rpc.namespace_boundary"),
    ("rpc_namespaces", "rpc.namespaces"),
    // Server HTTP API.
    ("api_key", "http_api.key"),
    ("api_insecure", "http_api.insecure"),
    ("api_error_mode", "http_api.error_mode"),
    ("api_external", "http_api.external"),
    ("api_disable", "http_api.disabled"),
    ("api_handler_prefix", "http_api.handler_prefix"),
    // WebSocket.
    ("websocket_disable", "websocket.disabled"),
    ("websocket_handler_prefix", "websocket.handler_prefix"),
    ("websocket_compression", "websocket.compression"),
    ("websocket_compression_min_size", "websocket.compression_min_size"),
    ("websocket_compression_level", "websocket.compression_level"),
    ("websocket_read_buffer_size", "websocket.read_buffer_size"),
    ("websocket_write_buffer_size", "websocket.write_buffer_size"),
    ("websocket_use_write_buffer_pool", "websocket.use_write_buffer_pool"),
    ("websocket_write_timeout", "websocket.write_timeout"),
    ("websocket_message_size_limit", "websocket.message_size_limit"),
    // Observability and admin endpoints (booleans in v5, sections in v6).
    ("prometheus", "prometheus.enabled"),
    ("prometheus_handler_prefix", "prometheus.handler_prefix"),
    ("health", "health.enabled"),
    ("health_handler_prefix", "health.handler_prefix"),
    ("admin", "admin.enabled"),
    ("admin_password", "admin.password"),
    ("admin_secret", "admin.secret"),
    ("admin_insecure", "admin.insecure"),
    ("admin_external", "admin.external"),
    ("admin_handler_prefix", "admin.handler_prefix"),
    ("admin_web_path", "admin.web_path"),
    ("admin_web_proxy_address", "admin.web_proxy_address"),
    ("debug", "debug.enabled"),
    ("swagger", "swagger.enabled"),
    ("swagger_handler_prefix", "swagger.handler_prefix"),
    ("usage_stats_disable", "usage_stats.disabled"),
    // Transports and features gyre does not have (mapped so the warning names the v6 key).
    ("uni_websocket", "uni_websocket.enabled"),
    ("uni_websocket_handler_prefix", "uni_websocket.handler_prefix"),
    ("uni_websocket_message_size_limit", "uni_websocket.message_size_limit"),
    ("uni_websocket_write_timeout", "uni_websocket.write_timeout"),
    ("http_stream_handler_prefix", "http_stream.handler_prefix"),
    ("http_stream_max_request_body_size", "http_stream.max_request_body_size"),
    ("sse_handler_prefix", "sse.handler_prefix"),
    ("sse_max_request_body_size", "sse.max_request_body_size"),
    ("emulation_handler_prefix", "emulation.handler_prefix"),
    ("emulation_max_request_body_size", "emulation.max_request_body_size"),
    ("uni_sse_handler_prefix", "uni_sse.handler_prefix"),
    ("uni_sse_max_request_body_size", "uni_sse.max_request_body_size"),
    ("uni_http_stream_handler_prefix", "uni_http_stream.handler_prefix"),
    ("uni_http_stream_max_request_body_size", "uni_http_stream.max_request_body_size"),
    ("uni_sse", "uni_sse.enabled"),
    ("uni_http_stream", "uni_http_stream.enabled"),
    ("uni_grpc", "uni_grpc.enabled"),
    ("uni_grpc_address", "uni_grpc.address"),
    ("uni_grpc_port", "uni_grpc.port"),
    ("uni_grpc_max_receive_message_size", "uni_grpc.max_receive_message_size"),
    ("uni_grpc_tls", "uni_grpc.tls.enabled"),
    ("uni_grpc_tls_cert", "uni_grpc.tls.cert_pem"),
    ("uni_grpc_tls_key", "uni_grpc.tls.key_pem"),
    ("http_stream", "http_stream.enabled"),
    ("sse", "sse.enabled"),
    ("webtransport", "webtransport.enabled"),
    ("grpc_api", "grpc_api.enabled"),
    ("grpc_api_address", "grpc_api.address"),
    ("grpc_api_port", "grpc_api.port"),
    ("grpc_api_key", "grpc_api.key"),
    ("grpc_api_error_mode", "grpc_api.error_mode"),
    ("grpc_api_reflection", "grpc_api.reflection"),
    ("grpc_api_max_receive_message_size", "grpc_api.max_receive_message_size"),
    ("grpc_api_tls", "grpc_api.tls.enabled"),
    ("grpc_api_tls_cert", "grpc_api.tls.cert_pem"),
    ("grpc_api_tls_key", "grpc_api.tls.key_pem"),
    ("opentelemetry", "opentelemetry.enabled"),
    ("graphite", "graphite.enabled"),
    ("http3", "http_server.http3.enabled"),
    ("tls", "http_server.tls.enabled"),
    ("tls_cert", "http_server.tls.cert_pem"),
    ("tls_key", "http_server.tls.key_pem"),
    ("tls_cert_pem", "http_server.tls.cert_pem"),
    ("tls_key_pem", "http_server.tls.key_pem"),
    ("tls_root_ca", "http_server.tls.server_ca_pem"),
    ("tls_root_ca_pem", "http_server.tls.server_ca_pem"),
    ("tls_client_ca", "http_server.tls.client_ca_pem"),
    ("tls_client_ca_pem", "http_server.tls.client_ca_pem"),
    ("tls_external", "http_server.tls_external"),
    ("tls_autocert", "http_server.tls_autocert.enabled"),
];

/// v5 key prefixes of whole feature families gyre does not have, with their v6 section.
const UNSUPPORTED_PREFIXES: &[(&str, &str)] = &[
    ("redis_", "engine.redis"),
    ("global_redis_", "engine.redis"),
    ("grpc_api_", "grpc_api"),
    ("uni_websocket_", "uni_websocket"),
    ("uni_sse_", "uni_sse"),
    ("uni_http_stream_", "uni_http_stream"),
    ("uni_grpc_", "uni_grpc"),
    ("http_stream_", "http_stream"),
    ("sse_", "sse"),
    ("emulation_", "emulation"),
    ("webtransport_", "webtransport"),
    ("graphite_", "graphite"),
    ("opentelemetry_", "opentelemetry"),
    ("tls_autocert_", "http_server.tls_autocert"),
    ("tls_", "http_server.tls"),
    ("proxy_", "client.proxy / channel.proxy / rpc.proxy"),
];

/// v5 keys removed in v6.
const REMOVED: &[&str] = &["shutdown_termination_delay", "sockjs", "granular_proxy_mode", "global_presence_ttl"];

/// Where a v5 key goes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// One v6 path.
    Path(Vec<String>),
    /// `engine: "memory"` → `engine.type`.
    EngineType,
    /// `broker: "nats"` → `broker.enabled: true` and `broker.type`.
    BrokerType,
}

/// The v6 target of a v5 top-level key, if it is one.
pub(crate) fn target(key: &str, schema: &Kind) -> Option<Target> {
    match key {
        "engine" => return Some(Target::EngineType),
        "broker" => return Some(Target::BrokerType),
        _ => {}
    }
    if let Some((_, path)) = MAP.iter().find(|(v5, _)| *v5 == key) {
        return Some(Target::Path(path.split('.').map(str::to_owned).collect()));
    }
    schema
        .at(&["channel", "without_namespace", key])
        .map(|_| Target::Path(vec!["channel".into(), "without_namespace".into(), key.to_owned()]))
}

/// Every v5 key gyre maps to one of its own settings, with the target (for v5 env names).
pub(crate) fn supported_keys(schema: &Kind) -> Vec<(String, Target)> {
    let mut keys: Vec<(String, Target)> = MAP
        .iter()
        .filter(|(_, path)| schema.at(&path.split('.').collect::<Vec<_>>()).is_some())
        .map(|(v5, path)| ((*v5).to_owned(), Target::Path(path.split('.').map(str::to_owned).collect())))
        .collect();
    if let Some(Kind::Obj(options)) = schema.at(&["channel", "without_namespace"]) {
        for option in options.keys() {
            keys.push((
                option.clone(),
                Target::Path(vec!["channel".into(), "without_namespace".into(), option.clone()]),
            ));
        }
    }
    keys.push(("engine".into(), Target::EngineType));
    keys.push(("broker".into(), Target::BrokerType));
    keys
}

/// Whether a top-level value is the v6 form of a key both generations use.
fn is_v6_form(key: &str, value: &Value, schema: &Kind) -> bool {
    let v6_section = schema.child(key).is_some_and(|kind| matches!(kind, Kind::Obj(_)))
        || super::compat::is_ignored(&super::schema::KeyPath::of(&[key]));
    v6_section && value.is_object()
}

/// Writes a mapped v5 value into the tree.
pub(crate) fn apply_target(tree: &mut Value, target: &Target, value: Value) {
    match target {
        Target::Path(path) => set_path(tree, path, value),
        Target::EngineType => set_path(tree, &["engine", "type"], value),
        Target::BrokerType => {
            set_path(tree, &["broker", "type"], value);
            set_path(tree, &["broker", "enabled"], json!(true));
        }
    }
}

fn target_paths(target: &Target) -> Vec<Vec<String>> {
    match target {
        Target::Path(path) => vec![path.clone()],
        Target::EngineType => vec![vec!["engine".into(), "type".into()]],
        Target::BrokerType => vec![vec!["broker".into(), "type".into()]],
    }
}

/// Rewrites the v5 top-level keys of a (lowercased) file tree into their v6 places.
pub(crate) fn translate(tree: &mut Value, schema: &Kind, out: &mut Findings) {
    let Value::Object(root) = tree else { return };
    let keys: Vec<String> = root.keys().cloned().collect();
    let mut v5_values: Vec<(String, Target, Value)> = Vec::new();
    for key in keys {
        let Some(value) = root.get(&key) else { continue };
        if is_v6_form(&key, value, schema) {
            continue;
        }
        if let Some(target) = target(&key, schema) {
            if matches!(target, Target::EngineType | Target::BrokerType) && !value.is_string() {
                continue; // Not the v5 string form: checked as the v6 section.
            }
            if let Some(value) = root.remove(&key) {
                v5_values.push((key, target, value));
            }
        } else if let Some((_, section)) = UNSUPPORTED_PREFIXES.iter().find(|(prefix, _)| key.starts_with(prefix)) {
            root.remove(&key);
            out.warnings.push(format!(
                "{key}: a Centrifugo v5 option for a feature gyre does not support (v6: {section}); ignored"
            ));
        } else if REMOVED.iter().any(|removed| key == *removed || key.starts_with(&format!("{removed}_"))) {
            root.remove(&key);
            out.warnings.push(format!("{key}: a Centrifugo v5 option removed in v6; ignored"));
        }
    }
    if v5_values.is_empty() {
        return;
    }
    let mut mapped = Vec::new();
    let snapshot = Value::Object(root.clone());
    for (key, target, value) in v5_values {
        let paths = target_paths(&target);
        if let Some(path) = paths.iter().find(|path| get_path(&snapshot, path).is_some()) {
            out.warnings
                .push(format!("{key}: Centrifugo v5 key ignored because the v6 key {} is also set", path.join(".")));
            continue;
        }
        apply_target(tree, &target, value);
        mapped.push(format!("{key} → {}", paths.iter().map(|p| p.join(".")).collect::<Vec<_>>().join(", ")));
    }
    if !mapped.is_empty() {
        out.warnings.push(format!(
            "the config uses Centrifugo v5 keys, read as their v6 equivalents ({}); consider converting the file to v6 keys",
            mapped.join("; ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::schema;

    fn translated(input: Value) -> (Value, Findings) {
        let mut tree = input;
        let mut out = Findings::default();
        translate(&mut tree, schema().expect("schema"), &mut out);
        (tree, out)
    }

    #[test]
    fn flat_keys_move_to_their_v6_places() {
        let (tree, out) = translated(json!({
            "token_hmac_secret_key": "s",
            "api_key": "k",
            "port": "9000",
            "presence": true,
            "history_size": 10,
            "engine": "memory",
            "broker": "nats",
            "nats_url": "nats://n:4222",
            "prometheus": true,
            "namespaces": [{"name": "chat"}],
        }));
        assert_eq!(tree["client"]["token"]["hmac_secret_key"], json!("s"));
        assert_eq!(tree["http_api"]["key"], json!("k"));
        assert_eq!(tree["http_server"]["port"], json!("9000"));
        assert_eq!(tree["channel"]["without_namespace"]["presence"], json!(true));
        assert_eq!(tree["channel"]["without_namespace"]["history_size"], json!(10));
        assert_eq!(tree["engine"]["type"], json!("memory"));
        assert_eq!(tree["broker"], json!({"type": "nats", "enabled": true, "nats": {"url": "nats://n:4222"}}));
        assert_eq!(tree["prometheus"]["enabled"], json!(true));
        assert_eq!(tree["channel"]["namespaces"], json!([{"name": "chat"}]));
        assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
        assert!(!out.warnings[0].contains("\"s\""), "values are never listed");
    }

    #[test]
    fn v6_sections_with_v5_names_are_left_alone_and_v6_wins() {
        let (tree, out) = translated(json!({
            "engine": {"type": "memory"},
            "prometheus": {"enabled": false},
            "api_key": "old",
            "http_api": {"key": "new"},
        }));
        assert_eq!(tree["engine"], json!({"type": "memory"}));
        assert_eq!(tree["prometheus"], json!({"enabled": false}));
        assert_eq!(tree["http_api"], json!({"key": "new"}));
        assert!(out.warnings.iter().any(|w| w.contains("api_key") && w.contains("http_api.key")), "{:?}", out.warnings);
    }

    #[test]
    fn grpc_keys_move_to_their_sections() {
        let (tree, _) = translated(json!({
            "grpc_api": true,
            "grpc_api_port": 10001,
            "grpc_api_key": "k",
            "grpc_api_error_mode": "transport",
            "grpc_api_tls": true,
            "uni_grpc_port": 11001,
        }));
        assert_eq!(
            tree["grpc_api"],
            json!({"enabled": true, "port": 10001, "key": "k", "error_mode": "transport", "tls": {"enabled": true}})
        );
        assert_eq!(tree["uni_grpc"], json!({"port": 11001}));
    }

    #[test]
    fn unsupported_v5_families_and_removed_keys_warn() {
        let (tree, out) = translated(json!({"redis_address": "x", "shutdown_termination_delay": "1s"}));
        assert_eq!(tree, json!({}));
        assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
    }

    #[test]
    fn supported_keys_cover_channel_options_and_token_keys() {
        let keys = supported_keys(schema().expect("schema"));
        let find = |name: &str| keys.iter().find(|(k, _)| k == name).map(|(_, t)| t.clone());
        assert_eq!(
            find("token_hmac_secret_key"),
            Some(Target::Path(vec!["client".into(), "token".into(), "hmac_secret_key".into()]))
        );
        assert!(find("allow_subscribe_for_client").is_some());
        assert!(find("admin_password").is_some());
        assert!(find("graphite").is_none(), "unsupported targets are not env aliases");
    }
}
