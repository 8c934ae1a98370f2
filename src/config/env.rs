//! Environment overrides, applied over the file.
//!
//! Names, lowest to highest priority:
//! 1. Centrifugo v5 aliases: `CENTRIFUGO_` + the upper-cased flat v5 key
//!    (`CENTRIFUGO_TOKEN_HMAC_SECRET_KEY`, `CENTRIFUGO_API_KEY`, `CENTRIFUGO_PRESENCE`).
//! 2. Centrifugo v6 names: `CENTRIFUGO_` + the key path upper-cased with single `_` between
//!    levels (`CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY`, `CENTRIFUGO_HTTP_API_KEY`).
//! 3. gyre names: `GYRE_` + the key path upper-cased with `__` between levels
//!    (`GYRE_CLIENT__TOKEN__HMAC_SECRET_KEY`, `GYRE_HTTP_SERVER__PORT`).
//! 4. Per-namespace options, for namespaces that exist after the above:
//!    `CENTRIFUGO_CHANNEL_NAMESPACES_<NAME>_<OPTION>` then
//!    `GYRE_CHANNEL__NAMESPACES__<NAME>__<OPTION>`, `<NAME>` upper-cased with `.` and `-` as `_`.
//!
//! An empty value counts as unset. Values are typed by the key (see [`parse_text`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::schema::{check, is_secret, parse_text, set_path, Findings, KeyPath, Kind};
use super::v5::{self, Target};

/// The environment variable prefix of gyre's own names.
pub(crate) const GYRE_PREFIX: &str = "GYRE_";
/// The environment variable prefix of Centrifugo's names.
pub(crate) const CENTRIFUGO_PREFIX: &str = "CENTRIFUGO_";

/// Variables with the `GYRE_` prefix that are not settings (read elsewhere).
const GYRE_NON_SETTINGS: &[&str] = &["GYRE_LOG"];

/// The gyre environment name of a key path.
pub(crate) fn gyre_name<S: AsRef<str>>(path: &[S]) -> String {
    let upper: Vec<String> = path.iter().map(|s| s.as_ref().to_uppercase()).collect();
    format!("{GYRE_PREFIX}{}", upper.join("__"))
}

/// The Centrifugo v6 environment name of a key path.
pub(crate) fn centrifugo_name<S: AsRef<str>>(path: &[S]) -> String {
    let upper: Vec<String> = path.iter().map(|s| s.as_ref().to_uppercase()).collect();
    format!("{CENTRIFUGO_PREFIX}{}", upper.join("_"))
}

/// A namespace name as it appears inside an environment variable name.
fn namespace_env_part(name: &str) -> String {
    name.replace(['.', '-'], "_").to_uppercase()
}

/// Names Kubernetes injects for a Service (`<NAME>_PORT`, `<NAME>_SERVICE_HOST`, …): never
/// warned about, and never read as v5 aliases (`CENTRIFUGO_PORT=tcp://…`).
fn is_kubernetes_name(prefix: &str, name: &str) -> bool {
    // Centrifugo's pattern: `^CENTRIFUGO(_[A-Z0-9_]+)?_(PORT|SERVICE_)`.
    let Some(rest) = name.strip_prefix(prefix.trim_end_matches('_')) else { return false };
    let plain = |s: &str| s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    rest.match_indices('_').any(|(at, _)| {
        let (head, tail) = rest.split_at(at);
        (tail.starts_with("_PORT") || tail.starts_with("_SERVICE_"))
            && (head.is_empty() || (head.len() > 1 && head.starts_with('_') && plain(head)))
    })
}

/// A pending assignment from one variable.
struct Assignment<'a> {
    name: &'a str,
    value: &'a str,
    target: Target,
    kind: &'a Kind,
}

/// Applies the environment to the tree. Bad values become errors naming the variable; unknown
/// `GYRE_*` and `CENTRIFUGO_*` variables become warnings.
pub(crate) fn apply(tree: &mut Value, schema: &Kind, env: &HashMap<String, String>, out: &mut Findings) {
    let leaves = schema.leaves();
    let mut gyre_names: BTreeMap<String, (Vec<String>, &Kind)> = BTreeMap::new();
    let mut centrifugo_names: BTreeMap<String, (Vec<String>, &Kind)> = BTreeMap::new();
    for (path, kind) in &leaves {
        gyre_names.insert(gyre_name(path), (path.clone(), *kind));
        centrifugo_names.insert(centrifugo_name(path), (path.clone(), *kind));
    }
    let mut v5_names: BTreeMap<String, (Target, &Kind)> = BTreeMap::new();
    for (key, target) in v5::supported_keys(schema) {
        let name = format!("{CENTRIFUGO_PREFIX}{}", key.to_uppercase());
        if centrifugo_names.contains_key(&name) || is_kubernetes_name(CENTRIFUGO_PREFIX, &name) {
            continue;
        }
        let kind = match &target {
            Target::Path(path) => schema.at(path),
            Target::EngineType => schema.at(&["engine", "type"]),
            Target::BrokerType => schema.at(&["broker", "type"]),
        };
        if let Some(kind) = kind {
            v5_names.insert(name, (target, kind));
        }
    }

    let mut sorted: Vec<(&String, &String)> = env.iter().filter(|(_, value)| !value.is_empty()).collect();
    sorted.sort();
    let mut v5_layer = Vec::new();
    let mut centrifugo_layer = Vec::new();
    let mut gyre_layer = Vec::new();
    let mut used: HashSet<&str> = HashSet::new();
    for (name, value) in &sorted {
        let (name, value) = (name.as_str(), value.as_str());
        if let Some((path, kind)) = gyre_names.get(name) {
            gyre_layer.push(Assignment { name, value, target: Target::Path(path.clone()), kind });
        } else if let Some((path, kind)) = centrifugo_names.get(name) {
            centrifugo_layer.push(Assignment { name, value, target: Target::Path(path.clone()), kind });
        } else if let Some((target, kind)) = v5_names.get(name) {
            v5_layer.push(Assignment { name, value, target: target.clone(), kind });
        } else {
            continue;
        }
        used.insert(name);
    }
    for layer in [v5_layer, centrifugo_layer, gyre_layer] {
        for assignment in layer {
            assign(tree, &assignment, out);
        }
    }

    apply_namespace_overrides(tree, schema, env, &mut used, out);

    for (name, _) in &sorted {
        let name = name.as_str();
        if used.contains(name) {
            continue;
        }
        let unknown = if name.starts_with(GYRE_PREFIX) {
            !GYRE_NON_SETTINGS.contains(&name) && !is_kubernetes_name(GYRE_PREFIX, name)
        } else if name.starts_with(CENTRIFUGO_PREFIX) {
            !name.starts_with("CENTRIFUGO_VAR_") && !is_kubernetes_name(CENTRIFUGO_PREFIX, name)
        } else {
            false
        };
        if unknown {
            out.warnings.push(format!("unknown environment variable {name}; ignored"));
        }
    }
}

fn assign(tree: &mut Value, assignment: &Assignment<'_>, out: &mut Findings) {
    let leaf = match &assignment.target {
        Target::Path(path) => path.last().map(String::as_str).unwrap_or(""),
        Target::EngineType | Target::BrokerType => "type",
    };
    let label = format!("environment variable {}", assignment.name);
    if let Some(value) = typed(assignment.kind, assignment.value, leaf, &label, out) {
        v5::apply_target(tree, &assignment.target, value);
    }
}

/// Types a text value for a key; errors go to `out` labelled with `label` (never with the value
/// of a secret key).
pub(crate) fn typed(kind: &Kind, text: &str, leaf: &str, label: &str, out: &mut Findings) -> Option<Value> {
    match parse_text(kind, text, is_secret(leaf)) {
        Ok(mut value) => {
            if let Kind::ObjList(element) = kind {
                // Check the objects the way file values are checked.
                let before = out.errors.len();
                if let Value::Array(items) = &mut value {
                    for (index, item) in items.iter_mut().enumerate() {
                        let mut path = KeyPath::default();
                        path.push_index(index);
                        check(element, item, &mut path, &format!("{label}: "), out);
                    }
                }
                if out.errors.len() > before {
                    return None;
                }
            }
            Some(value)
        }
        Err(reason) => {
            out.errors.push(format!("{label}: {reason}"));
            None
        }
    }
}

fn apply_namespace_overrides<'a>(
    tree: &mut Value,
    schema: &Kind,
    env: &'a HashMap<String, String>,
    used: &mut HashSet<&'a str>,
    out: &mut Findings,
) {
    let Some(Kind::ObjList(element)) = schema.at(&["channel", "namespaces"]) else { return };
    let Kind::Obj(options) = element.as_ref() else { return };
    let Some(Value::Array(namespaces)) = tree.get_mut("channel").and_then(|c| c.get_mut("namespaces")) else {
        return;
    };
    for namespace in namespaces.iter_mut() {
        let Some(name) = namespace.get("name").and_then(Value::as_str).map(namespace_env_part) else { continue };
        if name.is_empty() {
            continue;
        }
        for (option, kind) in options.iter().filter(|(option, _)| option.as_str() != "name") {
            let names = [
                format!("{CENTRIFUGO_PREFIX}CHANNEL_NAMESPACES_{name}_{}", option.to_uppercase()),
                format!("{GYRE_PREFIX}CHANNEL__NAMESPACES__{name}__{}", option.to_uppercase()),
            ];
            for var in names {
                let Some((key, text)) = env.get_key_value(&var) else { continue };
                if text.is_empty() {
                    continue;
                }
                used.insert(key.as_str());
                let label = format!("environment variable {var}");
                if let Some(value) = typed(kind, text, option, &label, out) {
                    set_path(namespace, &[option.as_str()], value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::schema::schema;

    fn applied(tree: Value, vars: &[(&str, &str)]) -> (Value, Findings) {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut tree = tree;
        let mut out = Findings::default();
        apply(&mut tree, schema().expect("schema"), &env, &mut out);
        (tree, out)
    }

    #[test]
    fn names_follow_both_conventions() {
        assert_eq!(gyre_name(&["client", "token", "hmac_secret_key"]), "GYRE_CLIENT__TOKEN__HMAC_SECRET_KEY");
        assert_eq!(centrifugo_name(&["client", "token", "hmac_secret_key"]), "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY");
    }

    #[test]
    fn gyre_beats_centrifugo_v6_beats_v5_alias() {
        let (tree, out) = applied(
            json!({}),
            &[
                ("CENTRIFUGO_TOKEN_HMAC_SECRET_KEY", "v5"),
                ("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "v6"),
                ("GYRE_HTTP_SERVER__PORT", "9000"),
                ("CENTRIFUGO_HTTP_SERVER_PORT", "7000"),
                ("CENTRIFUGO_API_KEY", "api"),
                ("CENTRIFUGO_PRESENCE", "T"),
                ("CENTRIFUGO_BROKER", "nats"),
            ],
        );
        assert!(out.errors.is_empty() && out.warnings.is_empty(), "{out:?}");
        assert_eq!(tree["client"]["token"]["hmac_secret_key"], json!("v6"));
        assert_eq!(tree["http_server"]["port"], json!(9000));
        assert_eq!(tree["http_api"]["key"], json!("api"));
        assert_eq!(tree["channel"]["without_namespace"]["presence"], json!(true));
        assert_eq!(tree["broker"], json!({"type": "nats", "enabled": true}));
    }

    #[test]
    fn values_are_typed_by_key() {
        let (tree, out) = applied(
            json!({}),
            &[
                ("CENTRIFUGO_CLIENT_ALLOWED_ORIGINS", "https://a https://b"),
                ("GYRE_CLIENT__PING_INTERVAL", "1m"),
                ("GYRE_CHANNEL__WITHOUT_NAMESPACE__HISTORY_SIZE", "0x10"),
                ("CENTRIFUGO_CHANNEL_NAMESPACES", r#"[{"name":"chat","presence":true}]"#),
                ("GYRE_LOG_LEVEL", ""),
            ],
        );
        assert!(out.errors.is_empty() && out.warnings.is_empty(), "{out:?}");
        assert_eq!(tree["client"]["allowed_origins"], json!(["https://a", "https://b"]));
        assert_eq!(tree["client"]["ping_interval"], json!("1m"));
        assert_eq!(tree["channel"]["without_namespace"]["history_size"], json!(16));
        assert_eq!(tree["channel"]["namespaces"], json!([{"name": "chat", "presence": true}]));
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_secrets() {
        let (_, out) = applied(
            json!({}),
            &[
                ("GYRE_HTTP_SERVER__PORT", "abc"),
                ("GYRE_CLIENT__INSECURE", "yes"),
                ("GYRE_CLIENT__PING_INTERVAL", "25"),
                ("CENTRIFUGO_CHANNEL_NAMESPACES", r#"[{"name":"chat","presence":"maybe"}]"#),
            ],
        );
        assert_eq!(out.errors.len(), 4, "{:?}", out.errors);
        assert!(out.errors.iter().any(|e| e.starts_with("environment variable GYRE_HTTP_SERVER__PORT: expected")));
        assert!(out.errors.iter().any(|e| e.contains("GYRE_CLIENT__INSECURE")));
        assert!(out.errors.iter().any(|e| e.contains("GYRE_CLIENT__PING_INTERVAL")));
        assert!(
            out.errors.iter().any(|e| e.contains("CENTRIFUGO_CHANNEL_NAMESPACES: [0].presence")),
            "{:?}",
            out.errors
        );
    }

    #[test]
    fn unknown_variables_warn_except_reserved_names() {
        let (_, out) = applied(
            json!({}),
            &[
                ("GYRE_CLIENT__TOKN", "x"),
                ("CENTRIFUGO_NOPE", "x"),
                ("GYRE_LOG", "debug"),
                ("CENTRIFUGO_VAR_X", "x"),
                ("CENTRIFUGO_PORT", "tcp://10.0.0.1:8000"),
                ("CENTRIFUGO_SERVICE_HOST", "10.0.0.1"),
                ("GYRE_PORT_8000_TCP", "tcp://10.0.0.1:8000"),
                ("PATH", "/bin"),
            ],
        );
        assert!(out.errors.is_empty(), "{out:?}");
        assert_eq!(
            out.warnings,
            vec![
                "unknown environment variable CENTRIFUGO_NOPE; ignored".to_owned(),
                "unknown environment variable GYRE_CLIENT__TOKN; ignored".to_owned(),
            ]
        );
    }

    #[test]
    fn per_namespace_overrides_touch_existing_namespaces_only() {
        let (tree, out) = applied(
            json!({"channel": {"namespaces": [{"name": "chat.room"}, {"name": "news"}]}}),
            &[
                ("CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_ROOM_PRESENCE", "true"),
                ("GYRE_CHANNEL__NAMESPACES__NEWS__HISTORY_SIZE", "5"),
                ("CENTRIFUGO_CHANNEL_NAMESPACES_NEWS_HISTORY_SIZE", "7"),
                ("CENTRIFUGO_CHANNEL_NAMESPACES_GHOST_PRESENCE", "true"),
            ],
        );
        assert!(out.errors.is_empty(), "{out:?}");
        assert_eq!(tree["channel"]["namespaces"][0]["presence"], json!(true));
        assert_eq!(tree["channel"]["namespaces"][1]["history_size"], json!(5));
        assert_eq!(
            out.warnings,
            vec!["unknown environment variable CENTRIFUGO_CHANNEL_NAMESPACES_GHOST_PRESENCE; ignored".to_owned()]
        );
    }
}
