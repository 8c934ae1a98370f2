//! Loading [`Settings`]: defaults ← config file (v6 keys, or v5 flat keys mapped to v6) ←
//! environment (`CENTRIFUGO_*` v5 aliases, `CENTRIFUGO_*` v6 names, `GYRE_*`) ← command-line
//! flags, then validation.
//!
//! Keys are case-insensitive. Unknown keys and variables are warnings, as in Centrifugo; values
//! of the wrong type and invalid settings are one [`ConfigError::Invalid`] listing every problem.
//! Messages never contain the value of a secret-looking key.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::schema::{self, check, lowercase_keys, set_path, Findings, KeyPath};
use super::{env, v5, validate, Settings};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed.
    #[error("cannot read config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Keys with values of the wrong type, invalid values, or settings that fail validation;
    /// every problem, separated by `"; "`.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings, validated.
    pub settings: Settings,
    /// Things to tell the operator (unknown keys or variables, options gyre ignores, v5 keys
    /// read as v6); log them once logging is up.
    pub warnings: Vec<String>,
    /// Paths of the file's unknown keys (`checkconfig --strict` fails on them).
    pub unknown_keys: Vec<String>,
}

/// One key set from the command line (highest priority), e.g. `http_server.port` = `"9000"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The v6 key path, dotted.
    pub key: String,
    /// The value as text; typed like an environment value.
    pub value: String,
    /// Where it came from, for messages (`flag --http_server.port`).
    pub source: String,
}

impl Override {
    /// An override from a command-line flag.
    pub fn flag(key: &str, flag: &str, value: impl Into<String>) -> Self {
        Self { key: key.to_owned(), value: value.into(), source: format!("flag --{flag}") }
    }
}

/// Loads settings from an optional file plus the process environment (and a `.env` file in the
/// working directory, whose entries the real environment overrides), and validates them.
pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
    load_with_env(path, &process_env())
}

/// Like [`load`], with the environment given explicitly.
pub fn load_with_env(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Loaded, ConfigError> {
    load_with(path, env, &[])
}

/// Like [`load_with_env`], with command-line overrides applied last.
pub fn load_with(
    path: Option<&Path>,
    env: &HashMap<String, String>,
    overrides: &[Override],
) -> Result<Loaded, ConfigError> {
    let tree = match path {
        Some(path) => read_file(path)?,
        None => Value::Object(Map::new()),
    };
    let label = path.map(|p| p.display().to_string()).unwrap_or_default();
    load_tree(tree, &label, env, overrides)
}

/// Loads settings from config text in `format` (`json`, `yaml` or `toml`) alone, with no
/// environment: what a config file with that content gives (the config fuzz target's entry).
pub fn load_text(text: &str, format: &str) -> Result<Loaded, ConfigError> {
    let path = Path::new("config").with_extension(format);
    let tree = parse_text(&path, text)?;
    load_tree(tree, "config", &HashMap::new(), &[])
}

fn load_tree(
    mut tree: Value,
    label: &str,
    env: &HashMap<String, String>,
    overrides: &[Override],
) -> Result<Loaded, ConfigError> {
    let schema = schema::schema().map_err(|e| ConfigError::Invalid(format!("internal error: {e}")))?;
    lowercase_keys(&mut tree);
    if !tree.is_object() {
        return Err(ConfigError::File {
            path: label.to_owned(),
            reason: "the top level must be a map of keys".to_owned(),
        });
    }

    let mut findings = Findings::default();
    v5::translate(&mut tree, schema, &mut findings);
    check(schema, &mut tree, &mut KeyPath::default(), "", &mut findings);
    env::apply(&mut tree, schema, env, &mut findings);
    for item in overrides {
        let segments: Vec<&str> = item.key.split('.').collect();
        match schema.at(&segments) {
            Some(kind) => {
                let leaf = segments.last().copied().unwrap_or("");
                if let Some(value) = env::typed(kind, &item.value, leaf, &item.source, &mut findings) {
                    set_path(&mut tree, &segments, value);
                }
            }
            None => findings.errors.push(format!("{}: unknown key {}", item.source, item.key)),
        }
    }
    if !findings.errors.is_empty() {
        return Err(ConfigError::Invalid(findings.errors.join("; ")));
    }

    let settings: Settings = serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        let leaf = path.rsplit(['.', '[']).next().unwrap_or("");
        let reason = if schema::is_secret(leaf) { "invalid value (hidden)".to_owned() } else { e.inner().to_string() };
        ConfigError::Invalid(format!("{path}: {reason}"))
    })?;

    let errors = validate::validate(&settings);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors.join("; ")));
    }
    let warnings = findings.warnings;
    Ok(Loaded { settings, warnings, unknown_keys: findings.unknown_keys })
}

/// Reads a JSON, YAML or TOML file (by extension) into a tree.
fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let file_error = |reason: String| ConfigError::File { path: path.display().to_string(), reason };
    if format_of(path).is_none() {
        return Err(file_error(UNSUPPORTED_EXTENSION.to_owned()));
    }
    if !path.is_file() {
        return Err(file_error("file not found".to_owned()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    parse_text(path, &text)
}

const UNSUPPORTED_EXTENSION: &str = "unsupported file extension; use .json, .yaml, .yml or .toml";

fn format_of(path: &Path) -> Option<config::FileFormat> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "json" => Some(config::FileFormat::Json),
        "yaml" | "yml" => Some(config::FileFormat::Yaml),
        "toml" => Some(config::FileFormat::Toml),
        _ => None,
    }
}

/// Parses the text of the config file at `path` (its extension names the format) into a tree.
fn parse_text(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let file_error = |reason: String| ConfigError::File { path: path.display().to_string(), reason };
    let Some(format) = format_of(path) else {
        return Err(file_error(UNSUPPORTED_EXTENSION.to_owned()));
    };
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    config::Config::builder()
        .add_source(config::File::from_str(text, format))
        .build()
        .and_then(|c| c.try_deserialize::<Value>())
        .map_err(|e| file_error(without_source_lines(&e.to_string())))
}

/// Drops the source excerpts some parsers quote in errors (`3 | key = "…"`): a broken line may
/// hold a secret.
fn without_source_lines(message: &str) -> String {
    let kept: Vec<&str> = message
        .lines()
        .filter(|line| {
            let trimmed = line.trim_start();
            let after_number = trimmed.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
            !after_number.starts_with('|')
        })
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    kept.join(" ")
}

/// The process environment, over the entries of a `.env` file in the working directory (if
/// any), as Centrifugo v6 does.
pub fn process_env() -> HashMap<String, String> {
    let mut env = std::fs::read_to_string(".env").map(|text| parse_dotenv(&text)).unwrap_or_default();
    env.extend(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))));
    env
}

/// Parses `.env` text: `KEY=VALUE` lines, `#` comments, optional `export `, optional quotes.
fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let value = value.trim();
        let value = match value.chars().next() {
            Some(quote @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(quote) => &value[1..value.len() - 1],
            // An unquoted value ends at a ` #` comment.
            _ => value.split(" #").next().unwrap_or("").trim_end(),
        };
        out.insert(key.to_owned(), value.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Duration;

    use super::*;
    use crate::config::{NamespaceSettings, Settings};

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(text.as_bytes()).expect("write");
        path
    }

    fn load_text(name: &str, text: &str, vars: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, name, text);
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        load_with_env(Some(&path), &env)
    }

    fn invalid(result: Result<Loaded, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid(message)) => message,
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn no_file_and_no_env_gives_defaults() {
        let loaded = load_with_env(None, &HashMap::new()).expect("load");
        assert_eq!(loaded.settings, Settings::default());
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn default_yaml_documents_exactly_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.yaml");
        let loaded = load_with_env(Some(&path), &HashMap::new()).expect("config/default.yaml loads");
        assert_eq!(loaded.settings, Settings::default());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn default_yaml_lists_every_key_with_its_env_names() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.yaml");
        let text = std::fs::read_to_string(&path).expect("read default.yaml");
        let mut tree = read_file(&path).expect("parse");
        lowercase_keys(&mut tree);
        let schema = schema::schema().expect("schema");
        for (leaf_path, _) in schema.leaves() {
            let dotted = leaf_path.join(".");
            assert!(schema::get_path(&tree, &leaf_path).is_some(), "config/default.yaml lacks {dotted}");
            for name in [env::gyre_name(&leaf_path), env::centrifugo_name(&leaf_path)] {
                assert!(text.contains(&name), "config/default.yaml does not mention {name} (for {dotted})");
            }
        }
    }

    #[test]
    fn reads_json_yaml_and_toml_alike() {
        let json = r#"{"http_server": {"port": 9000}, "client": {"token": {"hmac_secret_key": "s"}}}"#;
        let yaml = "http_server:\n  port: 9000\nclient:\n  token:\n    hmac_secret_key: s\n";
        let toml = "[http_server]\nport = 9000\n[client.token]\nhmac_secret_key = \"s\"\n";
        for (name, text) in [("c.json", json), ("c.yaml", yaml), ("c.yml", yaml), ("c.toml", toml)] {
            let loaded = load_text(name, text, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(loaded.settings.http_server.port, 9000, "{name}");
            assert_eq!(loaded.settings.client.token.hmac_secret_key, "s", "{name}");
        }
    }

    #[test]
    fn namespaces_read_from_every_format() {
        let toml =
            "[[channel.namespaces]]\nname = \"chat\"\npresence = true\n\n[[channel.namespaces]]\nname = \"news\"\n";
        let yaml = "channel:\n  namespaces:\n    - name: chat\n      presence: true\n    - name: news\n";
        let json = r#"{"channel": {"namespaces": [{"name": "chat", "presence": true}, {"name": "news"}]}}"#;
        for (name, text) in [("c.toml", toml), ("c.yaml", yaml), ("c.json", json)] {
            let loaded = load_text(name, text, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            let names: Vec<&str> = loaded.settings.channel.namespaces.iter().map(|ns| ns.name.as_str()).collect();
            assert_eq!(names, ["chat", "news"], "{name}");
            assert!(loaded.settings.channel.namespaces[0].options.presence, "{name}");
        }
    }

    #[test]
    fn keys_are_case_insensitive() {
        let loaded =
            load_text("c.json", r#"{"HTTP_Server": {"Port": 9001}, "Log": {"LEVEL": "debug"}}"#, &[]).expect("load");
        assert_eq!(loaded.settings.http_server.port, 9001);
        assert_eq!(loaded.settings.log.level, "debug");
    }

    #[test]
    fn file_problems_are_file_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.json");
        assert!(matches!(load_with_env(Some(&missing), &HashMap::new()), Err(ConfigError::File { .. })));
        let ini = write(&dir, "c.ini", "a=b");
        let err = load_with_env(Some(&ini), &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("unsupported file extension"), "{err}");
        let broken = write(&dir, "c.toml", "[client.token]\nhmac_secret_key = \"hunter2\n");
        let err = load_with_env(Some(&broken), &HashMap::new()).unwrap_err().to_string();
        assert!(err.starts_with("cannot read config file"), "{err}");
        assert!(!err.contains("hunter2"), "a parse error must not quote the secret: {err}");
    }

    #[test]
    fn v5_flat_and_v6_nested_files_load_the_same() {
        let v5 = r#"{
            "token_hmac_secret_key": "secret",
            "token_audience": "aud",
            "separate_subscription_token_config": true,
            "subscription_token_hmac_secret_key": "sub-secret",
            "api_key": "api",
            "api_insecure": false,
            "allowed_origins": ["https://example.com"],
            "port": "9000",
            "address": "127.0.0.1",
            "log_level": "debug",
            "engine": "memory",
            "broker": "nats",
            "nats_url": "nats://localhost:4223",
            "nats_prefix": "gy",
            "health": true,
            "prometheus": true,
            "client_insecure": false,
            "client_channel_limit": 64,
            "client_queue_max_size": 2048,
            "ping_interval": "20s",
            "channel_max_length": 100,
            "channel_private_prefix": "!",
            "user_subscribe_to_personal": true,
            "presence": true,
            "join_leave": true,
            "history_size": 10,
            "history_ttl": "300s",
            "allow_subscribe_for_client": true,
            "force_recovery": true,
            "namespaces": [{"name": "chat", "presence": true, "history_size": 5, "history_ttl": "60s"}]
        }"#;
        let v6 = r#"{
            "client": {
                "token": {"hmac_secret_key": "secret", "audience": "aud"},
                "subscription_token": {"enabled": true, "hmac_secret_key": "sub-secret"},
                "allowed_origins": ["https://example.com"],
                "insecure": false,
                "channel_limit": 64,
                "queue_max_size": 2048,
                "ping_interval": "20s",
                "subscribe_to_user_personal_channel": {"enabled": true}
            },
            "http_api": {"key": "api", "insecure": false},
            "http_server": {"port": 9000, "address": "127.0.0.1"},
            "log": {"level": "debug"},
            "engine": {"type": "memory"},
            "broker": {"enabled": true, "type": "nats", "nats": {"url": "nats://localhost:4223", "prefix": "gy"}},
            "health": {"enabled": true},
            "prometheus": {"enabled": true},
            "channel": {
                "max_length": 100,
                "private_prefix": "!",
                "without_namespace": {
                    "presence": true, "join_leave": true, "history_size": 10, "history_ttl": "300s",
                    "allow_subscribe_for_client": true, "force_recovery": true
                },
                "namespaces": [{"name": "chat", "presence": true, "history_size": 5, "history_ttl": "60s"}]
            }
        }"#;
        let from_v5 = load_text("v5.json", v5, &[]).expect("v5 loads");
        let from_v6 = load_text("v6.json", v6, &[]).expect("v6 loads");
        assert_eq!(from_v5.settings, from_v6.settings);
        assert!(from_v6.warnings.is_empty(), "{:?}", from_v6.warnings);
        assert_eq!(from_v5.warnings.len(), 1, "one note about v5 keys: {:?}", from_v5.warnings);
        assert_eq!(from_v5.settings.channel.namespaces[0].name, "chat");
        assert_eq!(from_v5.settings.channel.without_namespace.history_ttl, Duration::from_secs(300));
    }

    #[test]
    fn wrong_types_name_the_key_and_every_problem_is_listed() {
        let message = invalid(load_text(
            "c.yaml",
            "http_server:\n  port: abc\nclient:\n  insecure: maybe\n  ping_interval: 5 days\nchannel:\n  namespaces:\n    - name: chat\n      history_size: [1]\n",
            &[],
        ));
        assert!(message.contains("http_server.port: expected a non-negative integer, got \"abc\""), "{message}");
        assert!(message.contains("client.insecure: expected true or false"), "{message}");
        assert!(message.contains("client.ping_interval: invalid duration"), "{message}");
        assert!(message.contains("channel.namespaces[0].history_size: expected"), "{message}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let message = invalid(load_text("c.json", r#"{"http_server": {"port": 70000}}"#, &[]));
        assert!(message.starts_with("http_server.port:"), "{message}");
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let message = invalid(load_text("c.json", r#"{"client": {"token": {"hmac_secret_key": ["hunter2"]}}}"#, &[]));
        assert!(message.contains("client.token.hmac_secret_key"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let message =
            invalid(load_text("c.json", "{}", &[("GYRE_CLIENT__TOKEN__HMAC_PREVIOUS_SECRET_KEY_VALID_UNTIL", "x")]));
        assert!(message.contains("GYRE_CLIENT__TOKEN__HMAC_PREVIOUS_SECRET_KEY_VALID_UNTIL"), "{message}");
    }

    #[test]
    fn unknown_keys_warn_including_inside_namespaces() {
        let loaded = load_text(
            "c.json",
            r#"{"colour": "blue", "client": {"tokn": {}}, "channel": {"namespaces": [{"name": "chat", "presense": true}]},
                "graphite": {"enabled": true}}"#,
            &[],
        )
        .expect("unknown keys are not errors");
        assert_eq!(loaded.unknown_keys, vec!["channel.namespaces[0].presense", "client.tokn", "colour"]);
        assert_eq!(loaded.warnings.len(), 4, "{:?}", loaded.warnings);
        assert!(loaded.warnings.iter().any(|w| w.starts_with("graphite: a Centrifugo option gyre does not support")));
        assert_eq!(
            loaded.settings.channel.namespaces,
            vec![NamespaceSettings { name: "chat".into(), ..Default::default() }]
        );
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "c.json", r#"{"http_server": {"port": 8001}, "http_api": {"key": "file"}}"#);
        let env: HashMap<String, String> = [
            ("CENTRIFUGO_HTTP_API_KEY", "centrifugo"),
            ("GYRE_HTTP_API__KEY", "gyre"),
            ("GYRE_HTTP_SERVER__PORT", "8002"),
            ("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_PRESENCE", "true"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let loaded = load_with_env(Some(&path), &env).expect("load");
        assert_eq!(loaded.settings.http_api.key, "gyre");
        assert_eq!(loaded.settings.http_server.port, 8002);
        assert!(loaded.settings.channel.without_namespace.presence);
        let flags =
            [Override::flag("http_server.port", "port", "8003"), Override::flag("log.level", "log.level", "debug")];
        let loaded = load_with(Some(&path), &env, &flags).expect("load");
        assert_eq!(loaded.settings.http_server.port, 8003);
        assert_eq!(loaded.settings.log.level, "debug");
        let bad = [Override::flag("http_server.port", "http_server.port", "x")];
        let message = invalid(load_with(Some(&path), &env, &bad));
        assert!(message.contains("flag --http_server.port: expected"), "{message}");
    }

    #[test]
    fn command_rate_limits_load_in_centrifugo_pros_shape_and_bad_buckets_are_errors() {
        let text = r#"{"client": {"rate_limit": {"client_command": {"enabled": true,
            "total": {"enabled": true, "buckets": [{"interval": "1s", "rate": 20}, {"interval": "60s", "rate": 50}]},
            "history": {"enabled": true, "buckets": [{"interval": "1s", "rate": 2}]},
            "rpc": {"enabled": true, "buckets": [{"interval": "1s", "rate": 10}],
                    "method_overrides": [{"method": "status", "enabled": true, "buckets": [{"interval": "20s", "rate": 1}]}]}}}}}"#;
        let loaded = load_text("c.json", text, &[]).expect("valid");
        assert!(loaded.unknown_keys.is_empty() && loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let limits = &loaded.settings.client.rate_limit.client_command;
        assert_eq!(limits.total.buckets[1].interval, std::time::Duration::from_secs(60));
        assert_eq!(limits.history.buckets[0].rate, 2);
        assert_eq!(limits.rpc.method_overrides[0].method, "status");

        let bad = r#"{"client": {"rate_limit": {"client_command": {"enabled": true,
            "publish": {"enabled": true, "buckets": [{"interval": "0s", "rate": 1}]},
            "history": {"enabled": true}}}}}"#;
        let message = invalid(load_text("c.json", bad, &[]));
        assert!(message.contains("client.rate_limit.client_command.publish.buckets[0]"), "{message}");
        assert!(message.contains("client.rate_limit.client_command.history: enabled without buckets"), "{message}");
    }

    #[test]
    fn websocket_compression_loads_and_its_level_is_checked() {
        let text = r#"{"websocket": {"compression": true, "compression_min_size": 128, "compression_level": -1}}"#;
        let loaded = load_text("c.json", text, &[]).expect("loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert!(loaded.settings.websocket.compression);
        assert_eq!(loaded.settings.websocket.compression_min_size, 128);
        assert_eq!(loaded.settings.websocket.deflate_level(), 6);
        let message = invalid(load_text("c.json", r#"{"uni_websocket": {"compression_level": 10}}"#, &[]));
        assert!(message.contains("uni_websocket.compression_level: 10 is not a compression level"), "{message}");
    }

    #[test]
    fn audience_and_its_regex_are_exclusive_and_regexes_must_compile() {
        let text = r#"{"client": {"token": {"audience": "a", "audience_regex": "^a$", "issuer_regex": "(unclosed"}}}"#;
        let message = invalid(load_text("c.json", text, &[]));
        assert!(
            message.contains("client.token.audience and client.token.audience_regex: set one of them"),
            "{message}"
        );
        assert!(message.contains("client.token.issuer_regex: not a regular expression"), "{message}");
        let ok =
            r#"{"client": {"subscription_token": {"enabled": true, "hmac_secret_key": "s", "issuer_regex": "^x$"}}}"#;
        assert!(load_text("c.json", ok, &[]).is_ok());
    }

    #[test]
    fn validation_errors_are_collected() {
        let message = invalid(load_text(
            "c.yaml",
            "engine:\n  type: redis\nclient:\n  token:\n    jwks_public_endpoint: ftp://x/jwks\nchannel:\n  namespaces:\n    - name: a\n",
            &[],
        ));
        assert!(message.contains("engine.type"), "{message}");
        assert!(message.contains("is not an http:// or https:// URL"), "{message}");
        assert!(message.contains("channel.namespaces[0].name"), "{message}");
    }

    #[test]
    fn refused_options_are_errors() {
        let message = invalid(load_text("c.json", r#"{"http_server": {"tls_autocert": {"enabled": true}}}"#, &[]));
        assert!(
            message.contains("http_server.tls_autocert: automatic certificates (ACME) are not supported"),
            "{message}"
        );
        // v5's flat keys reach http_server.tls, which is checked at load.
        let message =
            invalid(load_text("c.json", r#"{"tls": true, "tls_cert": "/nonexistent/c.pem", "tls_key": "k"}"#, &[]));
        assert!(message.contains("http_server.tls.cert_pem: file \"/nonexistent/c.pem\" does not exist"), "{message}");
    }

    #[test]
    fn grpc_api_loads_from_file_and_env_and_its_tls_is_checked() {
        let text = r#"{"grpc_api": {"enabled": true, "port": 10001, "key": "k", "error_mode": "transport",
            "reflection": true, "max_receive_message_size": 1024, "tls": {"enabled": false}}}"#;
        let loaded = load_text("c.json", text, &[("CENTRIFUGO_GRPC_API_ADDRESS", "127.0.0.1")]).expect("loads");
        let expected = crate::config::GrpcApiSettings {
            enabled: true,
            address: "127.0.0.1".into(),
            port: 10001,
            key: "k".into(),
            error_mode: "transport".into(),
            reflection: true,
            max_receive_message_size: 1024,
            tls: crate::config::TlsSettings::default(),
        };
        assert_eq!(loaded.settings.grpc_api, expected);
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        let message = invalid(load_text("c.json", r#"{"grpc_api": {"enabled": true, "tls": {"enabled": true}}}"#, &[]));
        assert!(message.contains("grpc_api.tls: enabled without a certificate"), "{message}");
        let message = invalid(load_text("c.json", r#"{"grpc_api": {"error_mode": "status"}}"#, &[]));
        assert!(message.contains("grpc_api.error_mode: \"status\" is not an error mode"), "{message}");
    }

    #[test]
    fn bare_numbers_are_nanosecond_durations() {
        let message = invalid(load_text(
            "c.json",
            r#"{"channel": {"without_namespace": {"history_size": 1, "history_ttl": 300}}}"#,
            &[],
        ));
        assert!(message.contains("channel.without_namespace.history_ttl: sub-second precision"), "{message}");
        let loaded = load_text("c.json", r#"{"client": {"ping_interval": 30000000000}}"#, &[]).expect("load");
        assert_eq!(loaded.settings.client.ping_interval, Duration::from_secs(30));
    }

    #[test]
    fn nulls_and_empty_files_mean_unset() {
        let loaded = load_text("c.yaml", "client:\n  allowed_origins:\nlog:\n", &[]).expect("load");
        assert_eq!(loaded.settings, Settings::default());
        let loaded = load_text("c.json", "  \n", &[]).expect("load");
        assert_eq!(loaded.settings, Settings::default());
    }

    #[test]
    fn dotenv_parsing() {
        let env =
            parse_dotenv("# c\nexport GYRE_A=1\nGYRE_B=\"two words\"\nGYRE_C='x' \nGYRE_D=plain # note\nbad line\n");
        assert_eq!(env.get("GYRE_A").map(String::as_str), Some("1"));
        assert_eq!(env.get("GYRE_B").map(String::as_str), Some("two words"));
        assert_eq!(env.get("GYRE_C").map(String::as_str), Some("x"));
        assert_eq!(env.get("GYRE_D").map(String::as_str), Some("plain"));
        assert_eq!(env.len(), 4);
    }

    #[test]
    fn loaded_tree_round_trips() {
        // The serialized defaults load back to the defaults with no warnings.
        let dir = tempfile::tempdir().expect("tempdir");
        let text = serde_json::to_string(&Settings::default()).expect("serialize");
        let path = write(&dir, "all.json", &text);
        let loaded = load_with_env(Some(&path), &HashMap::new()).expect("load");
        assert_eq!(loaded.settings, Settings::default());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }
}
