//! Channel name rules: validation, namespace resolution, private and user-limited channels,
//! and the per-namespace permission checks Centrifugo applies to client commands
//! (protocol-server.md §3.4, protocol-client.md §3.2).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::history::RecoveryMode;
use crate::config::{ChannelOptions, Settings};
use crate::domain::ChannelName;
use crate::protocol::ReplyError;

/// A namespace's options, compiled.
#[derive(Debug)]
pub struct Namespace {
    /// Namespace name; `None` for channels without a namespace.
    pub name: Option<String>,
    /// Options from config.
    pub options: ChannelOptions,
    /// Retention of the namespace's history; `None` when history is off.
    pub history: Option<HistoryShape>,
    /// What publication data must look like (the namespace's, else the global one).
    pub data_format: DataFormat,
    /// How subscriptions recover (`force_recovery_mode`).
    pub recovery_mode: RecoveryMode,
    regex: Option<Regex>,
}

/// `publication_data_format`: what API and client publications must carry (error 107 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataFormat {
    /// `""`: anything but empty data.
    #[default]
    NonEmpty,
    /// `json`: a JSON value.
    Json,
    /// `json_object`: a JSON object.
    JsonObject,
    /// `binary`: anything, empty included.
    Binary,
}

impl DataFormat {
    /// The format a config value names (validated at load; unknown values act as `""`).
    pub fn from_config(value: &str) -> Self {
        match value {
            "json" => Self::Json,
            "json_object" => Self::JsonObject,
            "binary" => Self::Binary,
            _ => Self::NonEmpty,
        }
    }

    /// Whether `data` is acceptable publication data.
    pub fn accepts(self, data: &[u8]) -> bool {
        let is_json = || serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok();
        match self {
            Self::NonEmpty => !data.is_empty(),
            Self::Json => is_json(),
            Self::JsonObject => {
                let trimmed = data.trim_ascii();
                trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}') && is_json()
            }
            Self::Binary => true,
        }
    }
}

/// How a namespace retains history: what a cluster-wide history stream is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HistoryShape {
    /// Publications kept per channel (`history_size`).
    pub size: usize,
    /// How long the stream position outlives the last publication (`history_meta_ttl`).
    pub meta_ttl: std::time::Duration,
}

/// A channel name that resolved to a namespace.
#[derive(Debug, Clone)]
pub struct ResolvedChannel {
    /// The validated name.
    pub name: ChannelName,
    /// Its namespace.
    pub namespace: Arc<Namespace>,
    /// Starts with the private prefix: subscribing needs a token.
    pub private: bool,
}

/// What a client may do without a token, decided from namespace options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Subscribe.
    Subscribe,
    /// Publish.
    Publish,
    /// Presence and presence stats.
    Presence,
    /// History.
    History,
}

/// Who is asking, for permission checks.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// User id (`""` = anonymous).
    pub user: &'a str,
    /// Whether the asker is subscribed to the channel.
    pub subscribed: bool,
}

/// All channel rules of the node, built once from config.
#[derive(Debug)]
pub struct ChannelRules {
    namespaces: HashMap<String, Arc<Namespace>>,
    default: Arc<Namespace>,
    private_prefix: String,
    namespace_boundary: String,
    user_boundary: String,
    user_separator: String,
    max_length: usize,
    insecure: bool,
}

impl ChannelRules {
    /// Compiles the rules; fails on a `channel_regex` that does not compile.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let channel = &settings.channel;
        let mut namespaces = HashMap::new();
        let defaults = Defaults {
            meta_ttl: channel.history_meta_ttl,
            data_format: DataFormat::from_config(&channel.publication_data_format),
        };
        for ns in &channel.namespaces {
            let namespace = Namespace::new(Some(ns.name.clone()), ns.options.clone(), defaults)?;
            namespaces.insert(ns.name.clone(), Arc::new(namespace));
        }
        Ok(Self {
            namespaces,
            default: Arc::new(Namespace::new(None, channel.without_namespace.clone(), defaults)?),
            private_prefix: channel.private_prefix.clone(),
            namespace_boundary: channel.namespace_boundary.clone(),
            user_boundary: channel.user_boundary.clone(),
            user_separator: channel.user_separator.clone(),
            max_length: channel.max_length,
            insecure: settings.client.insecure,
        })
    }

    /// Every distinct history retention in the config (one cluster-wide stream each).
    pub fn history_shapes(&self) -> Vec<HistoryShape> {
        let mut shapes: Vec<HistoryShape> =
            self.namespaces.values().chain([&self.default]).filter_map(|ns| ns.history).collect();
        shapes.sort();
        shapes.dedup();
        shapes
    }

    /// Resolves a channel named by a client: length and character checks (107), then the
    /// namespace (102), then the namespace's `channel_regex` (107).
    pub fn resolve_client(&self, channel: &str) -> Result<ResolvedChannel, ReplyError> {
        if channel.len() > self.max_length || channel.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ReplyError::BadRequest);
        }
        let resolved = self.resolve(channel)?;
        let rest = self.rest_of(channel);
        let name_ok = match &resolved.namespace.regex {
            Some(regex) => regex.is_match(rest),
            None => channel.is_ascii(),
        };
        if !name_ok {
            return Err(ReplyError::BadRequest);
        }
        Ok(resolved)
    }

    /// Resolves a channel named by the server API: only the namespace is checked (102), as in
    /// Centrifugo; empty names are the caller's 107.
    pub fn resolve(&self, channel: &str) -> Result<ResolvedChannel, ReplyError> {
        let unprefixed = channel.strip_prefix(self.private_prefix.as_str()).filter(|_| !self.private_prefix.is_empty());
        let private = unprefixed.is_some();
        let lookup = unprefixed.unwrap_or(channel);
        let namespace = match self.split_namespace(lookup) {
            Some((ns, _)) => self.namespaces.get(ns).cloned().ok_or(ReplyError::UnknownChannel)?,
            None => self.default.clone(),
        };
        Ok(ResolvedChannel { name: ChannelName::new_unchecked(channel), namespace, private })
    }

    fn split_namespace<'a>(&self, channel: &'a str) -> Option<(&'a str, &'a str)> {
        if self.namespace_boundary.is_empty() {
            return None;
        }
        channel.split_once(self.namespace_boundary.as_str())
    }

    fn rest_of<'a>(&self, channel: &'a str) -> &'a str {
        let unprefixed = channel.strip_prefix(self.private_prefix.as_str()).unwrap_or(channel);
        self.split_namespace(unprefixed).map(|(_, rest)| rest).unwrap_or(unprefixed)
    }

    /// For `#`-limited channels (when the namespace allows them): whether `user` is listed.
    pub fn user_limited_allows(&self, channel: &ResolvedChannel, user: &str) -> Option<bool> {
        if !channel.namespace.options.allow_user_limited_channels || self.user_boundary.is_empty() {
            return None;
        }
        let (_, users) = channel.name.as_str().rsplit_once(self.user_boundary.as_str())?;
        Some(!user.is_empty() && users.split(self.user_separator.as_str()).any(|u| u == user))
    }

    /// Namespace permission for a client command without a token (insecure mode allows all).
    pub fn allows(&self, channel: &ResolvedChannel, action: Action, asker: Asker<'_>) -> bool {
        if self.insecure {
            return true;
        }
        let o = &channel.namespace.options;
        let (for_client, for_subscriber, for_anonymous) = match action {
            Action::Subscribe => (o.allow_subscribe_for_client, false, o.allow_subscribe_for_anonymous),
            Action::Publish => {
                (o.allow_publish_for_client, o.allow_publish_for_subscriber, o.allow_publish_for_anonymous)
            }
            Action::Presence => {
                (o.allow_presence_for_client, o.allow_presence_for_subscriber, o.allow_presence_for_anonymous)
            }
            Action::History => {
                (o.allow_history_for_client, o.allow_history_for_subscriber, o.allow_history_for_anonymous)
            }
        };
        let identity_ok = !asker.user.is_empty() || for_anonymous;
        match action {
            Action::Subscribe => for_client && identity_ok,
            _ => {
                (for_client && identity_ok)
                    || (for_subscriber && asker.subscribed)
                    || (for_anonymous && asker.user.is_empty())
            }
        }
    }
}

/// Global values a namespace option falls back to when it is left empty.
#[derive(Clone, Copy)]
struct Defaults {
    meta_ttl: Duration,
    data_format: DataFormat,
}

impl Namespace {
    fn new(name: Option<String>, options: ChannelOptions, defaults: Defaults) -> Result<Self, String> {
        let regex = match options.channel_regex.as_str() {
            "" => None,
            pattern => {
                Some(Regex::new(pattern).map_err(|e| format!("channel_regex {pattern:?} does not compile: {e}"))?)
            }
        };
        let meta_ttl = if options.history_meta_ttl.is_zero() { defaults.meta_ttl } else { options.history_meta_ttl };
        let history = options.history_enabled().then_some(HistoryShape { size: options.history_size, meta_ttl });
        let data_format = match options.publication_data_format.as_str() {
            "" => defaults.data_format,
            format => DataFormat::from_config(format),
        };
        let recovery_mode =
            if options.force_recovery_mode == "cache" { RecoveryMode::Cache } else { RecoveryMode::Stream };
        Ok(Self { name, options, history, data_format, recovery_mode, regex })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamespaceSettings;

    #[test]
    fn data_formats_follow_centrifugo() {
        let cases: [(&[u8], [bool; 4]); 6] = [
            // NonEmpty, Json, JsonObject, Binary
            (b"", [false, false, false, true]),
            (b"{\"a\":1}", [true, true, true, true]),
            (b" [1, 2] ", [true, true, false, true]),
            (b"\"text\"", [true, true, false, true]),
            (b"{not json}", [true, false, false, true]),
            (&[0xff, 0x00], [true, false, false, true]),
        ];
        let formats = [DataFormat::NonEmpty, DataFormat::Json, DataFormat::JsonObject, DataFormat::Binary];
        for (data, expected) in cases {
            let got = formats.map(|format| format.accepts(data));
            assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn a_namespace_data_format_wins_over_the_global_one() {
        let mut s = Settings::default();
        s.channel.publication_data_format = "json".into();
        s.channel.namespaces.push(NamespaceSettings {
            name: "bin".into(),
            options: ChannelOptions { publication_data_format: "binary".into(), ..Default::default() },
        });
        let rules = ChannelRules::from_settings(&s).unwrap();
        assert_eq!(rules.resolve("plain").unwrap().namespace.data_format, DataFormat::Json);
        assert_eq!(rules.resolve("bin:x").unwrap().namespace.data_format, DataFormat::Binary);
    }

    fn rules() -> ChannelRules {
        let mut s = Settings::default();
        s.channel.without_namespace.allow_subscribe_for_client = true;
        s.channel.namespaces.push(NamespaceSettings {
            name: "chat".into(),
            options: ChannelOptions {
                allow_publish_for_subscriber: true,
                allow_user_limited_channels: true,
                ..Default::default()
            },
        });
        s.channel.namespaces.push(NamespaceSettings {
            name: "num".into(),
            options: ChannelOptions { channel_regex: "^[0-9]+$".into(), ..Default::default() },
        });
        ChannelRules::from_settings(&s).unwrap()
    }

    #[test]
    fn resolves_namespaces_and_private_prefix() {
        let r = rules();
        assert_eq!(r.resolve("chat:room").unwrap().namespace.name.as_deref(), Some("chat"));
        assert!(r.resolve("$chat:room").unwrap().private);
        assert!(r.resolve("plain").unwrap().namespace.name.is_none());
        assert_eq!(r.resolve("nope:room").unwrap_err(), ReplyError::UnknownChannel);
    }

    #[test]
    fn client_names_are_validated() {
        let r = rules();
        assert_eq!(r.resolve_client("has space").unwrap_err(), ReplyError::BadRequest);
        assert_eq!(r.resolve_client("ctl\u{1}").unwrap_err(), ReplyError::BadRequest);
        assert_eq!(r.resolve_client(&"a".repeat(256)).unwrap_err(), ReplyError::BadRequest);
        assert_eq!(r.resolve_client("ünïcode").unwrap_err(), ReplyError::BadRequest);
        assert!(r.resolve_client("num:123").is_ok());
        assert_eq!(r.resolve_client("num:abc").unwrap_err(), ReplyError::BadRequest);
    }

    #[test]
    fn user_limited_channels_list_allowed_users() {
        let r = rules();
        let ch = r.resolve("chat:dialog#42,43").unwrap();
        assert_eq!(r.user_limited_allows(&ch, "43"), Some(true));
        assert_eq!(r.user_limited_allows(&ch, "44"), Some(false));
        let plain = r.resolve("plain#42").unwrap();
        assert_eq!(r.user_limited_allows(&plain, "42"), None);
    }

    #[test]
    fn permissions_follow_namespace_options() {
        let r = rules();
        let plain = r.resolve("plain").unwrap();
        let user = Asker { user: "1", subscribed: false };
        let anon = Asker { user: "", subscribed: false };
        assert!(r.allows(&plain, Action::Subscribe, user));
        assert!(!r.allows(&plain, Action::Subscribe, anon));
        assert!(!r.allows(&plain, Action::Publish, user));
        let chat = r.resolve("chat:x").unwrap();
        assert!(r.allows(&chat, Action::Publish, Asker { user: "1", subscribed: true }));
        assert!(!r.allows(&chat, Action::Publish, user));
    }
}
