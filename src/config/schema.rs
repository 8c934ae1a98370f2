//! The shape of [`Settings`], derived from the defaults themselves: which keys exist and which
//! type every leaf has. Loading uses it to check file values (with the weak conversions viper
//! allows, such as `"8000"` for an integer), to type environment values, and to find unknown
//! keys. Deriving it keeps this module from drifting when a field is added to [`Settings`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::{duration, Settings};

/// The type of one key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// `true`/`false`.
    Bool,
    /// An integer; `unsigned` when negative values are refused.
    Int {
        /// The field is an unsigned integer.
        unsigned: bool,
    },
    /// A string.
    Str,
    /// A Go duration string (`"25s"`); a bare number is nanoseconds.
    Duration,
    /// A list of strings.
    StrList,
    /// A list of objects with the given shape (`channel.namespaces`).
    ObjList(Box<Kind>),
    /// A section.
    Obj(BTreeMap<String, Kind>),
    /// Anything (a field whose default is null).
    Any,
}

impl Kind {
    /// The child key of a section.
    pub(crate) fn child(&self, key: &str) -> Option<&Kind> {
        match self {
            Kind::Obj(children) => children.get(key),
            _ => None,
        }
    }

    /// The kind at a dotted path of section keys (`["client", "token", "audience"]`).
    pub(crate) fn at<S: AsRef<str>>(&self, path: &[S]) -> Option<&Kind> {
        path.iter().try_fold(self, |kind, key| kind.child(key.as_ref()))
    }

    /// Every settable key below this section: scalars, string lists and object lists (sections
    /// themselves are not leaves), with their paths.
    pub(crate) fn leaves(&self) -> Vec<(Vec<String>, &Kind)> {
        let mut out = Vec::new();
        self.collect_leaves(&mut Vec::new(), &mut out);
        out
    }

    fn collect_leaves<'a>(&'a self, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'a Kind)>) {
        match self {
            Kind::Obj(children) => {
                for (key, kind) in children {
                    path.push(key.clone());
                    kind.collect_leaves(path, out);
                    path.pop();
                }
            }
            leaf => out.push((path.clone(), leaf)),
        }
    }

    /// What a value of this kind looks like, for error messages.
    pub(crate) fn expected(&self) -> &'static str {
        match self {
            Kind::Bool => "true or false",
            Kind::Int { unsigned: true } => "a non-negative integer",
            Kind::Int { unsigned: false } => "an integer",
            Kind::Str => "a string",
            Kind::Duration => "a duration such as \"25s\", \"1m30s\" or \"720h\"",
            Kind::StrList => "a list of strings",
            Kind::ObjList(_) => "a list of objects",
            Kind::Obj(_) => "a section (an object with keys)",
            Kind::Any => "a value",
        }
    }
}

/// The schema of [`Settings`], built once.
pub(crate) fn schema() -> Result<&'static Kind, String> {
    static SCHEMA: OnceLock<Result<Kind, String>> = OnceLock::new();
    SCHEMA.get_or_init(build).as_ref().map_err(Clone::clone)
}

/// One step of a path while probing: a key, or the first element of a list.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    First,
}

fn build() -> Result<Kind, String> {
    let root = serde_json::to_value(Settings::default()).map_err(|e| format!("cannot serialize defaults: {e}"))?;
    build_node(&root, &mut Vec::new(), &root)
}

fn build_node(root: &Value, path: &mut Vec<Seg>, here: &Value) -> Result<Kind, String> {
    Ok(match here {
        Value::Null => Kind::Any,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Int { unsigned: !accepts(root, path, json!(-1)) },
        // A duration field refuses a string that is not a duration; a string field takes it.
        Value::String(_) => {
            if accepts(root, path, json!("\u{1}")) {
                Kind::Str
            } else {
                Kind::Duration
            }
        }
        Value::Array(_) => {
            if accepts(root, path, json!(["x"])) {
                Kind::StrList
            } else {
                // A list of structs: let serde fill one element with its defaults, then derive
                // the element's shape from it.
                let mut tree = root.clone();
                set(&mut tree, path, json!([{}]));
                let filled: Settings =
                    serde_json::from_value(tree.clone()).map_err(|e| format!("cannot build a list element: {e}"))?;
                let back = serde_json::to_value(filled).map_err(|e| format!("cannot serialize a list element: {e}"))?;
                let element = get(&back, path)
                    .and_then(|list| list.get(0))
                    .cloned()
                    .ok_or_else(|| "a list element vanished while probing".to_owned())?;
                set(&mut tree, path, Value::Array(vec![element.clone()]));
                path.push(Seg::First);
                let kind = build_node(&tree, path, &element);
                path.pop();
                Kind::ObjList(Box::new(kind?))
            }
        }
        Value::Object(map) => {
            let mut children = BTreeMap::new();
            for (key, value) in map {
                path.push(Seg::Key(key.clone()));
                let kind = build_node(root, path, value);
                path.pop();
                children.insert(key.clone(), kind?);
            }
            Kind::Obj(children)
        }
    })
}

/// Whether [`Settings`] deserializes with `candidate` placed at `path`.
fn accepts(root: &Value, path: &[Seg], candidate: Value) -> bool {
    let mut tree = root.clone();
    set(&mut tree, path, candidate) && serde_json::from_value::<Settings>(tree).is_ok()
}

fn set(tree: &mut Value, path: &[Seg], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *tree = value;
        return true;
    };
    let mut node = tree;
    for seg in parents {
        let next = match seg {
            Seg::Key(key) => node.get_mut(key.as_str()),
            Seg::First => node.get_mut(0),
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    match (last, node) {
        (Seg::Key(key), Value::Object(map)) => {
            map.insert(key.clone(), value);
            true
        }
        (Seg::First, Value::Array(items)) if !items.is_empty() => {
            items[0] = value;
            true
        }
        _ => false,
    }
}

fn get<'a>(tree: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(tree, |node, seg| match seg {
        Seg::Key(key) => node.get(key.as_str()),
        Seg::First => node.get(0),
    })
}

/// A key path inside the config tree, for messages (`channel.namespaces[0].presence`) and for
/// matching against patterns (`channel.namespaces[].presence`).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyPath(Vec<PathSeg>);

#[derive(Debug, Clone)]
enum PathSeg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// A path of keys.
    pub(crate) fn of<S: AsRef<str>>(keys: &[S]) -> Self {
        Self(keys.iter().map(|k| PathSeg::Key(k.as_ref().to_owned())).collect())
    }

    pub(crate) fn push_key(&mut self, key: &str) {
        self.0.push(PathSeg::Key(key.to_owned()));
    }

    pub(crate) fn push_index(&mut self, index: usize) {
        self.0.push(PathSeg::Index(index));
    }

    pub(crate) fn pop(&mut self) {
        self.0.pop();
    }

    /// The last key (the leaf name), if any.
    pub(crate) fn leaf(&self) -> &str {
        self.0
            .iter()
            .rev()
            .find_map(|seg| match seg {
                PathSeg::Key(key) => Some(key.as_str()),
                PathSeg::Index(_) => None,
            })
            .unwrap_or("")
    }

    /// The path with list indexes written as `[]`, for pattern matching.
    pub(crate) fn pattern(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|seg| match seg {
                PathSeg::Key(key) => key.clone(),
                PathSeg::Index(_) => "[]".to_owned(),
            })
            .collect()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(key) if i == 0 => write!(f, "{key}")?,
                PathSeg::Key(key) => write!(f, ".{key}")?,
                PathSeg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Whether a key holds a secret whose value must never appear in a message.
pub(crate) fn is_secret(leaf: &str) -> bool {
    leaf == "key"
        || leaf.ends_with("_key")
        || leaf == "key_pem"
        || leaf.contains("secret")
        || leaf.contains("password")
        || leaf.contains("dsn")
}

/// A value as it may appear in a message: hidden for secrets, shortened when long.
pub(crate) fn shown(value: &Value, secret: bool) -> String {
    let type_name = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    if secret {
        return format!("{type_name} (value hidden)");
    }
    match value {
        Value::Array(_) | Value::Object(_) => type_name.to_owned(),
        other => {
            let text = other.to_string();
            if text.chars().count() > 60 {
                format!("{}…", text.chars().take(60).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// Go `strconv.ParseBool`.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go `strconv.ParseInt(text, 0, 64)`: optional sign, `0x`/`0o`/`0b` prefixes, a leading `0`
/// for octal, `_` separators after a prefix.
pub(crate) fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body, prefixed) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_owned(), true)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_owned(), true)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_owned(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_owned(), true)
    } else {
        (10, lower.clone(), false)
    };
    let body = if prefixed {
        if body.starts_with('_') || body.ends_with('_') || body.contains("__") {
            return None;
        }
        body.replace('_', "")
    } else {
        body
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(&body, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// What checking a tree found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Values of the wrong type, and refused keys.
    pub(crate) errors: Vec<String>,
    /// Everything worth telling the operator that does not stop the node.
    pub(crate) warnings: Vec<String>,
    /// Key paths that gyre (and Centrifugo v6) does not know.
    pub(crate) unknown_keys: Vec<String>,
}

/// Checks `value` against `kind`, converting weakly typed values in place (`"8000"` → 8000,
/// `"true"` → true, 25 → `"25"` for strings, a single string → a one-element list) and removing
/// keys that do not belong to the schema (reported as unknown or unsupported). `label` prefixes
/// error messages when the value does not come from the file (an environment variable).
pub(crate) fn check(kind: &Kind, value: &mut Value, path: &mut KeyPath, label: &str, out: &mut Findings) {
    let secret = is_secret(path.leaf());
    let mismatch = |value: &Value| format!("{label}{path}: expected {}, got {}", kind.expected(), shown(value, secret));
    match kind {
        Kind::Any => {}
        Kind::Obj(children) => {
            let Value::Object(map) = value else {
                out.errors.push(mismatch(value));
                return;
            };
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                path.push_key(&key);
                match children.get(&key) {
                    Some(child) => {
                        if let Some(child_value) = map.get_mut(&key) {
                            check(child, child_value, path, label, out);
                        }
                    }
                    None => {
                        if let Some(removed) = map.remove(&key) {
                            super::compat::report_foreign_key(path, &removed, label, out);
                        }
                    }
                }
                path.pop();
            }
        }
        Kind::ObjList(element) => {
            let Value::Array(items) = value else {
                out.errors.push(mismatch(value));
                return;
            };
            for (index, item) in items.iter_mut().enumerate() {
                path.push_index(index);
                check(element, item, path, label, out);
                path.pop();
            }
        }
        Kind::StrList => {
            if let Value::String(single) = value {
                *value = Value::Array(vec![Value::String(std::mem::take(single))]);
            }
            let Value::Array(items) = value else {
                out.errors.push(mismatch(value));
                return;
            };
            for (index, item) in items.iter_mut().enumerate() {
                match item {
                    Value::String(_) => {}
                    Value::Number(_) | Value::Bool(_) => *item = Value::String(item.to_string()),
                    other => {
                        path.push_index(index);
                        out.errors.push(format!("{label}{path}: expected a string, got {}", shown(other, secret)));
                        path.pop();
                    }
                }
            }
        }
        Kind::Bool => {
            let converted = match value {
                Value::Bool(_) => return,
                Value::String(text) => parse_bool(text.trim()),
                Value::Number(n) => match n.as_i64() {
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    _ => None,
                },
                _ => None,
            };
            match converted {
                Some(b) => *value = Value::Bool(b),
                None => out.errors.push(mismatch(value)),
            }
        }
        Kind::Int { unsigned } => {
            let number = match value {
                Value::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
                    .map(Ok)
                    .or_else(|| n.as_u64().map(|_| Err(()))),
                Value::String(text) => parse_int(text.trim()).map(Ok),
                _ => None,
            };
            match number {
                Some(Ok(n)) if *unsigned && n < 0 => out.errors.push(mismatch(value)),
                Some(Ok(n)) => *value = json!(n),
                // Larger than i64: leave it to the final deserialization to judge the range.
                Some(Err(())) => {}
                None => out.errors.push(mismatch(value)),
            }
        }
        Kind::Str => match value {
            Value::String(_) => {}
            Value::Number(_) | Value::Bool(_) => *value = Value::String(value.to_string()),
            other => out.errors.push(mismatch(other)),
        },
        Kind::Duration => match value {
            Value::String(text) => {
                if let Err(reason) = duration::parse(text) {
                    let reason = if secret { "invalid duration".to_owned() } else { reason };
                    out.errors.push(format!("{label}{path}: {reason}"));
                }
            }
            // A bare number is nanoseconds, as in Centrifugo.
            Value::Number(n) if n.is_i64() || n.is_u64() || n.is_f64() => {}
            other => out.errors.push(mismatch(other)),
        },
    }
}

/// Reads a text value (an environment variable or a flag) as a value of `kind`.
pub(crate) fn parse_text(kind: &Kind, text: &str, secret: bool) -> Result<Value, String> {
    let got = || shown(&Value::String(text.to_owned()), secret);
    match kind {
        Kind::Bool => parse_bool(text.trim()).map(Value::Bool).ok_or_else(|| {
            format!("expected true or false (or 1, t, T, TRUE, True, 0, f, F, FALSE, False), got {}", got())
        }),
        Kind::Int { unsigned } => match parse_int(text.trim()) {
            Some(n) if *unsigned && n < 0 => Err(format!("expected a non-negative integer, got {}", got())),
            Some(n) => Ok(json!(n)),
            None => Err(format!("expected {}, got {}", kind.expected(), got())),
        },
        Kind::Str | Kind::Any => Ok(Value::String(text.to_owned())),
        Kind::Duration => match duration::parse(text) {
            Ok(_) => Ok(Value::String(text.trim().to_owned())),
            Err(_) if secret => Err(format!("invalid duration: {}", got())),
            Err(reason) => Err(reason),
        },
        Kind::StrList => Ok(Value::Array(text.split_whitespace().map(|s| Value::String(s.to_owned())).collect())),
        Kind::ObjList(_) => {
            if text.trim_start().starts_with('[') {
                let mut parsed: Value =
                    serde_json::from_str(text).map_err(|e| format!("expected a JSON array of objects: {e}"))?;
                lowercase_keys(&mut parsed);
                Ok(parsed)
            } else {
                // As in Centrifugo: a non-JSON value is a space-separated list of names.
                Ok(Value::Array(text.split_whitespace().map(|name| json!({ "name": name })).collect()))
            }
        }
        Kind::Obj(_) => Err("a whole section cannot be set from one value; set its keys one by one".to_owned()),
    }
}

/// Lowercases every object key (config keys are case-insensitive, as in Centrifugo) and drops
/// null values (a key written without a value counts as unset).
pub(crate) fn lowercase_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let old = std::mem::take(map);
            let mut new = Map::new();
            for (key, mut child) in old {
                if child.is_null() {
                    continue;
                }
                lowercase_keys(&mut child);
                new.insert(key.to_lowercase(), child);
            }
            *map = new;
        }
        Value::Array(items) => items.iter_mut().for_each(lowercase_keys),
        _ => {}
    }
}

/// Sets `value` at a path of keys, creating sections on the way (replacing non-sections).
pub(crate) fn set_path<S: AsRef<str>>(tree: &mut Value, path: &[S], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *tree = value;
        return;
    };
    let mut node = tree;
    for key in parents {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        node = map.entry(key.as_ref().to_owned()).or_insert_with(|| Value::Object(Map::new()));
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Value::Object(map) = node {
        map.insert(last.as_ref().to_owned(), value);
    }
}

/// The value at a path of keys.
pub(crate) fn get_path<'a, S: AsRef<str>>(tree: &'a Value, path: &[S]) -> Option<&'a Value> {
    path.iter().try_fold(tree, |node, key| node.get(key.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(path: &str) -> Kind {
        let segments: Vec<&str> = path.split('.').collect();
        schema().expect("schema").at(&segments).cloned().unwrap_or(Kind::Any)
    }

    #[test]
    fn schema_types_leaves_from_the_defaults() {
        assert_eq!(kind("http_server.port"), Kind::Int { unsigned: true });
        assert_eq!(kind("client.token.hmac_previous_secret_key_valid_until"), Kind::Int { unsigned: false });
        assert_eq!(kind("client.insecure"), Kind::Bool);
        assert_eq!(kind("client.ping_interval"), Kind::Duration);
        assert_eq!(kind("log.level"), Kind::Str);
        assert_eq!(kind("client.allowed_origins"), Kind::StrList);
        assert_eq!(kind("client.subscription_token.hmac_secret_key"), Kind::Str);
        let Kind::ObjList(element) = kind("channel.namespaces") else { panic!("namespaces is a list of objects") };
        assert_eq!(element.child("name"), Some(&Kind::Str));
        assert_eq!(element.child("history_ttl"), Some(&Kind::Duration));
        assert_eq!(element.child("allowed_delta_types"), Some(&Kind::StrList));
        assert_eq!(kind("channel.without_namespace.history_size"), Kind::Int { unsigned: true });
    }

    #[test]
    fn go_parse_int_and_parse_bool() {
        assert_eq!(parse_int("8000"), Some(8000));
        assert_eq!(parse_int("-5"), Some(-5));
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("0b101"), Some(5));
        assert_eq!(parse_int("1_000"), None);
        assert_eq!(parse_int("0x1_0"), Some(16));
        assert_eq!(parse_int("abc"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("99999999999999999999"), None);
        assert_eq!(parse_bool("T"), Some(true));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn check_converts_weak_values_and_names_the_key_on_mismatch() {
        let schema = schema().expect("schema");
        let mut tree = json!({
            "http_server": {"port": "9000", "address": 127},
            "client": {"insecure": "true", "allowed_origins": "*"}
        });
        let mut out = Findings::default();
        check(schema, &mut tree, &mut KeyPath::default(), "", &mut out);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(tree["http_server"]["port"], json!(9000));
        assert_eq!(tree["http_server"]["address"], json!("127"));
        assert_eq!(tree["client"]["insecure"], json!(true));
        assert_eq!(tree["client"]["allowed_origins"], json!(["*"]));

        let mut tree = json!({"http_server": {"port": "abc"}, "client": {"token": {"hmac_secret_key": [12345]}}});
        let mut out = Findings::default();
        check(schema, &mut tree, &mut KeyPath::default(), "", &mut out);
        assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
        assert!(out.errors.contains(&"http_server.port: expected a non-negative integer, got \"abc\"".to_owned()));
        let secret_error = out.errors.iter().find(|e| e.contains("hmac_secret_key")).expect("secret key error");
        assert!(!secret_error.contains("12345"), "{secret_error}");
    }

    #[test]
    fn parse_text_types_environment_values() {
        let schema = schema().expect("schema");
        let namespaces = schema.at(&["channel", "namespaces"]).expect("namespaces");
        assert_eq!(parse_text(namespaces, "chat news", false), Ok(json!([{"name": "chat"}, {"name": "news"}])));
        assert_eq!(parse_text(namespaces, r#"[{"Name":"chat"}]"#, false), Ok(json!([{"name": "chat"}])));
        assert!(parse_text(namespaces, "[oops", false).is_err());
        assert_eq!(parse_text(&Kind::StrList, "https://a  https://b", false), Ok(json!(["https://a", "https://b"])));
        assert_eq!(parse_text(&Kind::Duration, "1m30s", false), Ok(json!("1m30s")));
        assert!(parse_text(&Kind::Duration, "25", false).is_err());
        let hidden = parse_text(&Kind::Int { unsigned: false }, "s3cret", true).unwrap_err();
        assert!(!hidden.contains("s3cret"), "{hidden}");
    }

    #[test]
    fn key_paths_display_and_match() {
        let mut path = KeyPath::of(&["channel", "namespaces"]);
        path.push_index(2);
        path.push_key("presence");
        assert_eq!(path.to_string(), "channel.namespaces[2].presence");
        assert_eq!(path.pattern(), vec!["channel", "namespaces", "[]", "presence"]);
        assert_eq!(path.leaf(), "presence");
        assert!(is_secret("hmac_secret_key") && is_secret("key") && !is_secret("audience"));
    }
}
