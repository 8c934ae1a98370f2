//! Startup validation (protocol-server.md §3.7): every problem is collected, each message names
//! the key and says what to do.

use std::collections::HashSet;
use std::time::Duration;

use regex::Regex;

use super::{duration, ChannelOptions, Settings, TokenSettings};

const LOG_LEVELS: &[&str] = &["none", "trace", "debug", "info", "warn", "error"];
const LOG_FORMATS: &[&str] = &["text", "json"];
const DATA_FORMATS: &[&str] = &["", "json", "json_object", "binary"];
const BROKER_TYPES: &[&str] = &["memory", "nats"];
/// More HTTP worker threads than this is a typo, not a tuning.
const MAX_WORKERS: usize = 1024;

/// Values that a deployment template puts where a secret belongs (`CHANGE_ME` in a Kubernetes
/// Secret template, `<your-key>`, an unexpanded `${VAR}` or `{{ .Values.key }}`). Compared
/// case-insensitively. Plain `secret` is not here: Centrifugo's own examples use it for local
/// development, and refusing it would break configs that Centrifugo accepts.
const PLACEHOLDERS: &[&str] =
    &["change_me", "changeme", "change-me", "change me", "changeit", "replace_me", "replaceme"];

/// True when `value` is a template placeholder rather than a real secret.
fn is_placeholder(value: &str) -> bool {
    let value = value.trim();
    let wrapped = |open: &str, close: &str| {
        value.len() > open.len() + close.len() && value.starts_with(open) && value.ends_with(close)
    };
    PLACEHOLDERS.iter().any(|p| value.eq_ignore_ascii_case(p))
        || wrapped("<", ">")
        || wrapped("${", "}")
        || wrapped("{{", "}}")
}

fn one_of(allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|a| if a.is_empty() { "\"\"".to_owned() } else { (*a).to_owned() })
        .collect::<Vec<_>>()
        .join(", ")
}

fn valid_namespace_name(name: &str) -> bool {
    name.len() >= 2 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_claim_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
}

fn whole_seconds(value: Duration) -> bool {
    value.subsec_nanos() == 0
}

/// Checks a loaded [`Settings`]; returns every problem found (empty when valid).
pub fn validate(settings: &Settings) -> Vec<String> {
    let mut errors = Vec::new();
    let s = settings;

    if !LOG_LEVELS.contains(&s.log.level.as_str()) {
        errors.push(format!("log.level: {:?} is not a log level; use one of {}", s.log.level, one_of(LOG_LEVELS)));
    }
    if !LOG_FORMATS.contains(&s.log.format.as_str()) {
        errors.push(format!("log.format: {:?} is not a log format; use one of {}", s.log.format, one_of(LOG_FORMATS)));
    }

    let internal_port = s.http_server.internal_port.trim();
    if !internal_port.is_empty() && internal_port.parse::<u16>().is_err() {
        errors.push(format!(
            "http_server.internal_port: {internal_port:?} is not a port number; use a number from 0 to 65535 or leave it empty"
        ));
    }

    for (section, level) in
        [("websocket", s.websocket.compression_level), ("uni_websocket", s.uni_websocket.compression_level)]
    {
        if !(-2..=9).contains(&level) {
            errors.push(format!(
                "{section}.compression_level: {level} is not a compression level; use -2 to 9 (1 is the fastest, 9 the smallest)"
            ));
        }
    }

    super::proxy::validate(s, &mut errors);
    validate_tls(s, &mut errors);

    super::code_maps::validate(
        &s.client.connect_code_to_unidirectional_disconnect,
        &[
            ("uni_sse", &s.uni_sse.connect_code_to_http_response),
            ("uni_http_stream", &s.uni_http_stream.connect_code_to_http_response),
        ],
        &mut errors,
    );

    if s.http_server.workers > MAX_WORKERS {
        errors.push(format!(
            "http_server.workers: {} threads is more than {MAX_WORKERS}; use 0 (one per CPU) or a number up to {MAX_WORKERS}",
            s.http_server.workers
        ));
    }

    match s.engine.kind.as_str() {
        "memory" => {}
        "redis" => errors.push(
            "engine.type: the redis engine is not supported by gyre; use memory (a NATS broker for multi-node \
             setups is configured with broker.type: nats)"
                .to_owned(),
        ),
        other => errors.push(format!("engine.type: unknown engine {other:?}; use memory")),
    }
    if !BROKER_TYPES.contains(&s.broker.kind.as_str()) {
        errors.push(format!(
            "broker.type: {:?} is not supported by gyre; use one of {}",
            s.broker.kind,
            one_of(BROKER_TYPES)
        ));
    }
    if !(1..=5).contains(&s.broker.nats.history_replicas) {
        errors.push(format!(
            "broker.nats.history_replicas: {} is out of range; use 1 to 5 (at most the number of NATS servers)",
            s.broker.nats.history_replicas
        ));
    }
    if !BROKER_TYPES.contains(&s.presence_manager.kind.as_str()) {
        errors.push(format!(
            "presence_manager.type: {:?} is not supported by gyre; use one of {}",
            s.presence_manager.kind,
            one_of(BROKER_TYPES)
        ));
    }

    for (key, env, value) in [
        ("client.token.hmac_secret_key", "GYRE_CLIENT__TOKEN__HMAC_SECRET_KEY", &s.client.token.hmac_secret_key),
        (
            "client.subscription_token.hmac_secret_key",
            "GYRE_CLIENT__SUBSCRIPTION_TOKEN__HMAC_SECRET_KEY",
            &s.client.subscription_token.token.hmac_secret_key,
        ),
        ("http_api.key", "GYRE_HTTP_API__KEY", &s.http_api.key),
        ("grpc_api.key", "GYRE_GRPC_API__KEY", &s.grpc_api.key),
    ] {
        // Never echo the value: it may be a real secret that merely looks like a template.
        if is_placeholder(value) {
            errors.push(format!(
                "{key}: the value is a template placeholder, not a secret; set a real value in \
                 the config file or the environment ({env}), e.g. generated with `openssl rand -hex 32`"
            ));
        }
    }

    validate_token(&s.client.token, "client.token", &mut errors);
    validate_token(&s.client.subscription_token.token, "client.subscription_token", &mut errors);

    let client = &s.client;
    if !client.ping_interval.is_zero() && client.ping_interval <= client.pong_timeout {
        errors.push(format!(
            "client.ping_interval ({}) must be greater than client.pong_timeout ({}); raise ping_interval or lower \
             pong_timeout",
            duration::format(client.ping_interval),
            duration::format(client.pong_timeout)
        ));
    }

    if !["", "transport"].contains(&s.http_api.error_mode.as_str()) {
        errors.push(format!(
            "http_api.error_mode: {:?} is not an error mode; use \"\" (errors in the response body) or transport",
            s.http_api.error_mode
        ));
    }
    if !["", "transport"].contains(&s.grpc_api.error_mode.as_str()) {
        errors.push(format!(
            "grpc_api.error_mode: {:?} is not an error mode; use \"\" (errors in the response) or transport",
            s.grpc_api.error_mode
        ));
    }

    let channel = &s.channel;
    if !whole_seconds(channel.history_meta_ttl) {
        errors.push(format!(
            "channel.history_meta_ttl: sub-second precision is not supported (got {}); a bare number is read as \
             nanoseconds, write a duration such as \"720h\"",
            duration::format(channel.history_meta_ttl)
        ));
    }
    if !DATA_FORMATS.contains(&channel.publication_data_format.as_str()) {
        errors.push(format!(
            "channel.publication_data_format: {:?} is not a data format; use one of {}",
            channel.publication_data_format,
            one_of(DATA_FORMATS)
        ));
    }

    validate_options(&channel.without_namespace, "channel.without_namespace", channel.history_meta_ttl, &mut errors);
    let mut seen = HashSet::new();
    for (index, namespace) in channel.namespaces.iter().enumerate() {
        let at = format!("channel.namespaces[{index}]");
        if !valid_namespace_name(&namespace.name) {
            errors.push(format!(
                "{at}.name: {:?} is not a valid namespace name; use at least 2 characters from a-z, A-Z, 0-9, -, _ and .",
                namespace.name
            ));
        } else if !seen.insert(namespace.name.as_str()) {
            errors.push(format!(
                "{at}.name: namespace {:?} is defined more than once; merge the entries",
                namespace.name
            ));
        }
        validate_options(&namespace.options, &at, channel.history_meta_ttl, &mut errors);
    }

    validate_rate_limits(&client.rate_limit.client_command, &mut errors);
    let personal = &client.subscribe_to_user_personal_channel;
    if personal.enabled || personal.single_connection {
        let namespace = personal.personal_channel_namespace.as_str();
        let options = if namespace.is_empty() {
            Some(&channel.without_namespace)
        } else {
            channel.namespaces.iter().find(|ns| ns.name == namespace).map(|ns| &ns.options)
        };
        match options {
            None => errors.push(format!(
                "client.subscribe_to_user_personal_channel.personal_channel_namespace: namespace {namespace:?} is not \
                 defined in channel.namespaces; add it or clear the option"
            )),
            Some(options) if personal.single_connection && !options.presence => errors.push(format!(
                "client.subscribe_to_user_personal_channel.single_connection needs presence in the personal channel \
                 namespace; set presence: true in {}",
                if namespace.is_empty() {
                    "channel.without_namespace".to_owned()
                } else {
                    format!("namespace {namespace:?}")
                }
            )),
            Some(_) => {}
        }
    }
    errors
}

fn validate_rate_limits(limits: &super::rate_limit::ClientCommandLimits, errors: &mut Vec<String>) {
    if !limits.enabled {
        return;
    }
    for (at, enabled, buckets) in limits.sets() {
        if enabled && buckets.is_empty() {
            errors.push(format!(
                "{at}: enabled without buckets; add buckets such as [{{\"interval\": \"1s\", \"rate\": 10}}]"
            ));
        }
        for (i, bucket) in buckets.iter().enumerate() {
            if bucket.interval.is_zero() || bucket.rate == 0 {
                errors.push(format!(
                    "{at}.buckets[{i}]: interval and rate must both be above zero (got {:?}, {})",
                    bucket.interval, bucket.rate
                ));
            }
        }
    }
}

fn validate_token(token: &TokenSettings, at: &str, errors: &mut Vec<String>) {
    let jwks = token.jwks_public_endpoint.trim();
    let is_url = jwks.starts_with("http://") || jwks.starts_with("https://");
    if !jwks.is_empty() && !is_url {
        errors.push(format!("{at}.jwks_public_endpoint: {jwks:?} is not an http:// or https:// URL"));
    } else if !token.insecure_skip_jwks_endpoint_safety_check {
        for name in crate::auth::jwks::placeholders(jwks) {
            let safe = [&token.issuer_regex, &token.audience_regex]
                .iter()
                .filter_map(|pattern| named_group_body(pattern, &name))
                .all(is_literal_alternation);
            if !safe {
                errors.push(format!(
                    "{at}.jwks_public_endpoint: placeholder {{{{{name}}}}} comes from a regex group that is not a plain list \
                     of alternatives such as (?P<{name}>acme|globex), so a token could point the node at any URL; \
                     list the values, or set {at}.insecure_skip_jwks_endpoint_safety_check"
                ));
            }
        }
    }
    for (exact, pattern, name) in
        [(&token.audience, &token.audience_regex, "audience"), (&token.issuer, &token.issuer_regex, "issuer")]
    {
        if !exact.is_empty() && !pattern.is_empty() {
            errors.push(format!("{at}.{name} and {at}.{name}_regex: set one of them, not both"));
        }
        if let Err(error) = regex::Regex::new(pattern) {
            errors.push(format!("{at}.{name}_regex: not a regular expression ({error})"));
        }
    }
    if !token.user_id_claim.is_empty() && !valid_claim_name(&token.user_id_claim) {
        errors.push(format!(
            "{at}.user_id_claim: {:?} is not a valid claim name; use letters and _ only",
            token.user_id_claim
        ));
    }
}

/// The source of a named group `(?P<name>…)` or `(?<name>…)` of a regex.
fn named_group_body<'a>(pattern: &'a str, name: &str) -> Option<&'a str> {
    let start = [format!("(?P<{name}>"), format!("(?<{name}>")]
        .iter()
        .find_map(|open| pattern.find(open.as_str()).map(|at| at + open.len()))?;
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in pattern[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '(' => depth += 1,
            ')' if depth == 0 => return Some(&pattern[start..start + i]),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `acme|globex|eu\.west`: literals (letters, digits, `_`, `-`, escaped dots) joined by `|`.
fn is_literal_alternation(body: &str) -> bool {
    !body.is_empty()
        && body.split('|').all(|literal| {
            let unescaped = literal.replace("\\.", "");
            !literal.is_empty() && unescaped.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

fn validate_options(options: &ChannelOptions, at: &str, global_meta_ttl: Duration, errors: &mut Vec<String>) {
    let size_set = options.history_size > 0;
    let ttl_set = !options.history_ttl.is_zero();
    if size_set != ttl_set {
        errors.push(format!(
            "{at}: history_size and history_ttl must be set together (got history_size {} and history_ttl {}); set \
             both to enable history or neither",
            options.history_size,
            duration::format(options.history_ttl)
        ));
    }
    for (key, value) in [("history_ttl", options.history_ttl), ("history_meta_ttl", options.history_meta_ttl)] {
        if !whole_seconds(value) {
            errors.push(format!(
                "{at}.{key}: sub-second precision is not supported (got {}); a bare number is read as nanoseconds, \
                 write a duration such as \"300s\"",
                duration::format(value)
            ));
        }
    }
    let meta_ttl = if options.history_meta_ttl.is_zero() { global_meta_ttl } else { options.history_meta_ttl };
    if ttl_set && !meta_ttl.is_zero() && options.history_ttl > meta_ttl {
        errors.push(format!(
            "{at}.history_ttl ({}) must not exceed the history meta TTL ({}); lower history_ttl or raise history_meta_ttl",
            duration::format(options.history_ttl),
            duration::format(meta_ttl)
        ));
    }
    if options.force_recovery && !options.history_enabled() {
        errors.push(format!(
            "{at}.force_recovery needs history; set history_size and history_ttl, or turn force_recovery off"
        ));
    }
    match options.force_recovery_mode.as_str() {
        "" | "stream" | "cache" => {}
        other => {
            errors.push(format!("{at}.force_recovery_mode: {other:?} is not a recovery mode; use stream or cache"))
        }
    }
    if options.auto_cache_recover && !(options.force_recovery && options.force_recovery_mode == "cache") {
        errors.push(format!(
            "{at}.auto_cache_recover needs force_recovery: true and force_recovery_mode: cache; set both or turn it off"
        ));
    }
    if !DATA_FORMATS.contains(&options.publication_data_format.as_str()) {
        errors.push(format!(
            "{at}.publication_data_format: {:?} is not a data format; use one of {}",
            options.publication_data_format,
            one_of(DATA_FORMATS)
        ));
    }
    for delta in &options.allowed_delta_types {
        if delta != "fossil" {
            errors.push(format!("{at}.allowed_delta_types: {delta:?} is not a delta type; only fossil is supported"));
        }
    }
    if !options.channel_regex.is_empty() {
        if let Err(e) = Regex::new(&options.channel_regex) {
            let reason = e.to_string().lines().last().unwrap_or("invalid").trim().to_owned();
            errors.push(format!("{at}.channel_regex: the regex does not compile ({reason}); fix the pattern"));
        }
    }
    match options.subscription_type.as_str() {
        "" | "stream" => {}
        other => errors.push(format!(
            "{at}.subscription_type: {other:?} subscriptions are not supported by gyre; use stream (or leave it empty)"
        )),
    }
}

/// Every enabled listener TLS must load: files readable, key matching, certificate current.
fn validate_tls(s: &Settings, errors: &mut Vec<String>) {
    let http = &s.http_server;
    let listeners = [
        (&http.tls, "http_server.tls", true),
        (&http.internal_tls, "http_server.internal_tls", true),
        (&s.uni_grpc.tls, "uni_grpc.tls", s.uni_grpc.enabled),
        (&s.grpc_api.tls, "grpc_api.tls", s.grpc_api.enabled),
    ];
    for (tls, at, used) in listeners {
        if used {
            if let Err(error) = crate::tls::ListenerTls::from_settings(tls, at) {
                errors.push(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamespaceSettings;

    fn namespace(name: &str) -> NamespaceSettings {
        NamespaceSettings { name: name.into(), options: ChannelOptions::default() }
    }

    #[test]
    fn jwks_placeholders_must_come_from_lists_of_literals() {
        assert_eq!(named_group_body("^x/(?P<realm>acme|globex)$", "realm"), Some("acme|globex"));
        assert_eq!(named_group_body("^(?<t>(a|b)c)$", "t"), Some("(a|b)c"));
        assert!(is_literal_alternation("acme|globex|eu\\.west-1"));
        for unsafe_body in ["[a-z]+", ".*", "a|", "(a|b)c", "a.b", ""] {
            assert!(!is_literal_alternation(unsafe_body), "{unsafe_body}");
        }
    }

    fn has(errors: &[String], needle: &str) -> bool {
        errors.iter().any(|e| e.contains(needle))
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&Settings::default()), Vec::<String>::new());
    }

    #[test]
    fn namespace_names_must_match_and_be_unique() {
        let mut s = Settings::default();
        s.channel.namespaces =
            vec![namespace("chat"), namespace("chat"), namespace("x"), namespace("a b"), namespace("v1.x-y")];
        let errors = validate(&s);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(has(&errors, "channel.namespaces[1].name: namespace \"chat\" is defined more than once"));
        assert!(has(&errors, "channel.namespaces[2].name: \"x\" is not a valid namespace name"));
        assert!(has(&errors, "channel.namespaces[3].name"));
    }

    #[test]
    fn history_rules() {
        let mut s = Settings::default();
        s.channel.without_namespace.history_size = 10;
        s.channel.without_namespace.force_recovery = true;
        let mut ns = namespace("chat");
        ns.options.history_ttl = Duration::from_millis(1500);
        ns.options.history_size = 5;
        ns.options.force_recovery_mode = "snapshot".into();
        ns.options.auto_cache_recover = true;
        let mut long = namespace("long");
        long.options.history_size = 1;
        long.options.history_ttl = Duration::from_secs(3600);
        long.options.history_meta_ttl = Duration::from_secs(60);
        s.channel.namespaces = vec![ns, long];
        let errors = validate(&s);
        assert!(has(&errors, "channel.without_namespace: history_size and history_ttl must be set together"));
        assert!(has(&errors, "channel.without_namespace.force_recovery needs history"));
        assert!(has(&errors, "channel.namespaces[0].history_ttl: sub-second precision"));
        assert!(has(&errors, "\"snapshot\" is not a recovery mode; use stream or cache"));
        assert!(has(&errors, "channel.namespaces[0].auto_cache_recover needs force_recovery: true"));
        assert!(has(&errors, "channel.namespaces[1].history_ttl (1h0m0s) must not exceed"));
        assert_eq!(errors.len(), 6, "{errors:?}");
    }

    #[test]
    fn option_value_sets() {
        let mut s = Settings::default();
        let o = &mut s.channel.without_namespace;
        o.publication_data_format = "xml".into();
        o.allowed_delta_types = vec!["fossil".into(), "bsdiff".into()];
        o.channel_regex = "([a-z".into();
        o.subscription_type = "map".into();
        s.http_api.error_mode = "custom".into();
        s.log.level = "fatal".into();
        s.log.format = "yaml".into();
        let errors = validate(&s);
        for needle in [
            "publication_data_format: \"xml\"",
            "\"bsdiff\" is not a delta type",
            "channel_regex: the regex does not compile",
            "\"map\" subscriptions are not supported",
            "http_api.error_mode",
            "log.level",
            "log.format",
        ] {
            assert!(has(&errors, needle), "missing {needle}: {errors:?}");
        }
        assert_eq!(errors.len(), 7);
    }

    #[test]
    fn ping_must_exceed_pong_unless_disabled() {
        let mut s = Settings::default();
        s.client.ping_interval = Duration::from_secs(5);
        s.client.pong_timeout = Duration::from_secs(8);
        assert!(has(&validate(&s), "client.ping_interval (5s) must be greater than client.pong_timeout (8s)"));
        s.client.ping_interval = Duration::ZERO;
        assert!(validate(&s).is_empty());
    }

    #[test]
    fn engines_brokers_and_tokens() {
        let mut s = Settings::default();
        s.engine.kind = "redis".into();
        s.broker.kind = "postgres".into();
        s.presence_manager.kind = "nats".into();
        s.client.token.jwks_public_endpoint = "https://example/{{tenant}}/jwks".into();
        s.client.token.issuer_regex = "^(?P<tenant>[a-z]+)$".into();
        s.client.subscription_token.token.user_id_claim = "user.id".into();
        s.client.token.audience = "aud".into();
        s.http_server.internal_port = "x9000".into();
        s.http_server.workers = 100_000;
        s.broker.nats.history_replicas = 0;
        let errors = validate(&s);
        assert!(has(&errors, "engine.type: the redis engine is not supported by gyre"));
        assert!(has(&errors, "broker.type: \"postgres\""));
        assert!(has(&errors, "client.token.jwks_public_endpoint: placeholder {{tenant}} comes from a regex group"));
        assert!(has(&errors, "client.subscription_token.user_id_claim"));
        assert!(has(&errors, "http_server.internal_port"));
        assert!(has(&errors, "http_server.workers"));
        assert!(has(&errors, "broker.nats.history_replicas: 0 is out of range"));
        assert_eq!(errors.len(), 7, "{errors:?}");
    }

    #[test]
    fn placeholder_secrets_fail_without_echoing_the_value() {
        for placeholder in [
            "CHANGE_ME",
            "change_me",
            "ChangeMe",
            "changeit",
            " CHANGE_ME\n",
            "<hmac secret>",
            "${HMAC_KEY}",
            "{{ .Values.key }}",
        ] {
            let mut s = Settings::default();
            s.client.token.hmac_secret_key = placeholder.into();
            s.http_api.key = placeholder.into();
            let errors = validate(&s);
            assert_eq!(errors.len(), 2, "{placeholder:?}: {errors:?}");
            assert!(has(&errors, "client.token.hmac_secret_key: the value is a template placeholder"), "{errors:?}");
            assert!(has(&errors, "GYRE_CLIENT__TOKEN__HMAC_SECRET_KEY"), "{errors:?}");
            assert!(has(&errors, "http_api.key: the value is a template placeholder"), "{errors:?}");
            assert!(has(&errors, "set a real value"), "{errors:?}");
            let trimmed = placeholder.trim();
            assert!(errors.iter().all(|e| !e.contains(trimmed)), "the value must not be printed: {errors:?}");
        }
        let mut s = Settings::default();
        s.client.subscription_token.token.hmac_secret_key = "changeme".into();
        assert!(has(&validate(&s), "client.subscription_token.hmac_secret_key: the value is a template placeholder"));
    }

    #[test]
    fn real_and_empty_secrets_pass_the_placeholder_rule() {
        for value in ["", "secret", "s3cr3t-CHANGE_ME-not-alone", "a<b>", "$HOME", "${", "<>", "k8s-generated-0f3a9c"] {
            let mut s = Settings::default();
            s.client.token.hmac_secret_key = value.into();
            s.http_api.key = value.into();
            assert_eq!(validate(&s), Vec::<String>::new(), "{value:?}");
        }
    }

    #[test]
    fn personal_channel_rules() {
        let mut s = Settings::default();
        s.client.subscribe_to_user_personal_channel.enabled = true;
        s.client.subscribe_to_user_personal_channel.personal_channel_namespace = "personal".into();
        assert!(has(&validate(&s), "namespace \"personal\" is not defined"));
        s.channel.namespaces = vec![namespace("personal")];
        s.client.subscribe_to_user_personal_channel.single_connection = true;
        assert!(has(&validate(&s), "single_connection needs presence"));
        s.channel.namespaces[0].options.presence = true;
        assert!(validate(&s).is_empty());
    }
}
