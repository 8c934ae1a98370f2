//! Plain values shared by several actors: identifiers, publications, client info, stream
//! positions. No actix, no IO. Their serde form is Centrifugo's wire form, shared by the client
//! protocol and the server API.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod payload;
pub mod small_map;

pub use payload::{present, Payload, NOT_JSON};
pub use small_map::SmallMap;

/// A connection's unique id (UUID v4 string, as Centrifugo uses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string().into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ClientId {
    fn from(value: &str) -> Self {
        Self(value.into())
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ClientId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(s.into()))
    }
}

/// A channel name that passed [`crate::channel::ChannelRules`] validation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

impl ChannelName {
    /// Wraps a name; callers validate first (see [`crate::channel::ChannelRules::resolve`]).
    pub fn new_unchecked(name: &str) -> Self {
        Self(name.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a connection is, as shown in presence, join/leave and client publications.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientInfo {
    /// User id (`""` for anonymous). Always present on the wire.
    pub user: Arc<str>,
    /// Connection id. Always present on the wire.
    pub client: ClientId,
    /// Connection info (`info` claim of the connection token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_info: Option<Payload>,
    /// Channel info (`info` claim of the subscription token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chan_info: Option<Payload>,
}

/// One message in a channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Publication {
    /// The payload. Empty data has no `data` key in JSON, as Centrifugo's encoder omits it.
    #[serde(default, skip_serializing_if = "Payload::is_empty")]
    pub data: Payload,
    /// Publisher info (client-side publishes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Arc<ClientInfo>>,
    /// Position in the channel stream; 0 when the channel keeps no history.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// Application tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// `data` is a fossil patch against the subscriber's previous publication.
    #[serde(default, skip_serializing_if = "is_false")]
    pub delta: bool,
    /// The publisher asked for delta compression (API `delta`, namespace `delta_publish`). Not
    /// part of the client wire form.
    #[serde(skip)]
    pub use_delta: bool,
    /// Publisher's version of the channel's state (API `version`): a publication whose version
    /// is not newer than the stream's last one is dropped. 0 = unversioned.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u64,
    /// Scopes `version` (API `version_epoch`); empty matches any. Not on the client wire.
    #[serde(skip)]
    pub version_epoch: String,
}

impl Publication {
    /// Whether this publication is an outdated version of a stream whose last publication had
    /// `version` in `epoch` (Centrifugo v6.2+): then it is neither stored nor delivered.
    pub fn is_outdated(&self, version: u64, epoch: &str) -> bool {
        self.version > 0 && (self.version_epoch.is_empty() || self.version_epoch == epoch) && self.version <= version
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A position in a channel stream: the newest offset and the stream's incarnation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamPosition {
    /// Offset of the newest publication.
    pub offset: u64,
    /// Opaque id of the stream incarnation; changes when the stream is lost.
    pub epoch: Arc<str>,
}

/// `now + ttl`, saturating far in the future instead of overflowing on absurd configured TTLs.
pub fn deadline_after(now: std::time::Instant, ttl: std::time::Duration) -> std::time::Instant {
    now.checked_add(ttl).unwrap_or_else(|| now + std::time::Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publication_wire_form_omits_empty_fields() {
        let p = Publication { data: Payload::from("{\"x\":1}"), use_delta: true, ..Default::default() };
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"data":{"x":1}}"#);
    }

    #[test]
    fn versions_not_newer_in_the_same_epoch_are_outdated() {
        let at =
            |version: u64, epoch: &str| Publication { version, version_epoch: epoch.to_owned(), ..Default::default() };
        assert!(at(3, "").is_outdated(3, "e"));
        assert!(at(2, "e").is_outdated(3, "e"));
        assert!(!at(4, "e").is_outdated(3, "e"));
        assert!(!at(2, "other").is_outdated(3, "e"), "another epoch starts over");
        assert!(!at(0, "").is_outdated(3, "e"), "unversioned publications always go");
    }

    #[test]
    fn client_info_always_has_user_and_client() {
        let info = ClientInfo { user: "".into(), client: "c1".into(), conn_info: None, chan_info: None };
        assert_eq!(serde_json::to_string(&info).unwrap(), r#"{"user":"","client":"c1"}"#);
    }
}
