//! How payloads cross nodes and sit in JetStream: byte for byte, whatever they hold.
//!
//! A payload whose bytes are exactly one JSON value is written as that value, so records stay
//! readable and records written before payloads were bytes still decode. Any other payload
//! (binary data, JSON with surrounding whitespace) is written as `{"b64": "<base64>"}`; a JSON
//! payload that itself looks like that wrapper is wrapped too, so reading never guesses wrong.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::domain::{ClientId, ClientInfo, Payload, Publication};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Serialize, Deserialize)]
struct Wrapped {
    b64: String,
}

/// `with` functions for a `Payload` field.
pub mod payload {
    use super::*;

    /// Writes the payload as its JSON value, or wrapped.
    pub fn serialize<S: Serializer>(payload: &Payload, s: S) -> Result<S::Ok, S::Error> {
        match payload.as_exact_json().filter(|raw| !looks_wrapped(raw)) {
            Some(raw) => raw.serialize(s),
            None => Wrapped { b64: BASE64.encode(payload.as_bytes()) }.serialize(s),
        }
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if looks_wrapped(&raw) {
            let wrapped: Wrapped = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
            return BASE64.decode(wrapped.b64).map(Payload::new).map_err(D::Error::custom);
        }
        Ok(Payload::from_json(raw))
    }
}

/// `with` functions for an `Option<Payload>` field.
pub mod optional_payload {
    use super::*;

    /// Writes `null` or the payload.
    pub fn serialize<S: Serializer>(value: &Option<Payload>, s: S) -> Result<S::Ok, S::Error> {
        value.as_ref().map(Lossless).serialize(s)
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Payload>, D::Error> {
        Ok(Option::<Owned>::deserialize(d)?.map(|owned| owned.0))
    }
}

/// `{"b64": "..."}` and nothing else.
fn looks_wrapped(raw: &RawValue) -> bool {
    raw.get().starts_with('{') && serde_json::from_str::<Wrapped>(raw.get()).is_ok_and(|_| is_one_key(raw))
}

fn is_one_key(raw: &RawValue) -> bool {
    serde_json::from_str::<BTreeMap<String, serde::de::IgnoredAny>>(raw.get()).is_ok_and(|map| map.len() == 1)
}

/// A payload written losslessly.
pub struct Lossless<'a>(pub &'a Payload);

impl Serialize for Lossless<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        payload::serialize(self.0, s)
    }
}

struct Owned(Payload);

impl<'de> Deserialize<'de> for Owned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        payload::deserialize(d).map(Owned)
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A publication as it crosses nodes and is stored.
#[derive(Serialize)]
pub struct PublicationRecord<'a> {
    data: Lossless<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<ClientInfoRecord<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    offset: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: &'a BTreeMap<String, String>,
    /// The publisher asked for delta compression: every node computes patches for it.
    #[serde(skip_serializing_if = "is_false")]
    use_delta: bool,
    #[serde(skip_serializing_if = "is_zero")]
    version: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    version_epoch: &'a str,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl<'a> From<&'a Publication> for PublicationRecord<'a> {
    fn from(publication: &'a Publication) -> Self {
        Self {
            data: Lossless(&publication.data),
            info: publication.info.as_deref().map(ClientInfoRecord::from),
            offset: publication.offset,
            tags: &publication.tags,
            use_delta: publication.use_delta,
            version: publication.version,
            version_epoch: &publication.version_epoch,
        }
    }
}

#[derive(Deserialize)]
struct OwnedPublication {
    #[serde(default, with = "payload")]
    data: Payload,
    #[serde(default, with = "optional_client_info")]
    info: Option<ClientInfo>,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    use_delta: bool,
    #[serde(default)]
    version: u64,
    #[serde(default)]
    version_epoch: String,
}

/// Who a connection is, as it crosses nodes.
#[derive(Serialize)]
pub struct ClientInfoRecord<'a> {
    user: &'a str,
    client: &'a ClientId,
    #[serde(skip_serializing_if = "Option::is_none")]
    conn_info: Option<Lossless<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chan_info: Option<Lossless<'a>>,
}

impl<'a> From<&'a ClientInfo> for ClientInfoRecord<'a> {
    fn from(info: &'a ClientInfo) -> Self {
        Self {
            user: &info.user,
            client: &info.client,
            conn_info: info.conn_info.as_ref().map(Lossless),
            chan_info: info.chan_info.as_ref().map(Lossless),
        }
    }
}

#[derive(Deserialize)]
struct OwnedClientInfo {
    user: String,
    client: ClientId,
    #[serde(default, with = "optional_payload")]
    conn_info: Option<Payload>,
    #[serde(default, with = "optional_payload")]
    chan_info: Option<Payload>,
}

impl From<OwnedClientInfo> for ClientInfo {
    fn from(info: OwnedClientInfo) -> Self {
        ClientInfo { user: info.user.into(), client: info.client, conn_info: info.conn_info, chan_info: info.chan_info }
    }
}

/// `with` functions for a `Publication` field.
pub mod publication {
    use super::*;

    /// Writes a [`PublicationRecord`].
    pub fn serialize<S: Serializer>(publication: &Publication, s: S) -> Result<S::Ok, S::Error> {
        PublicationRecord::from(publication).serialize(s)
    }

    /// Reads a [`PublicationRecord`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Publication, D::Error> {
        let owned = OwnedPublication::deserialize(d)?;
        Ok(Publication {
            data: owned.data,
            info: owned.info.map(std::sync::Arc::new),
            offset: owned.offset,
            tags: owned.tags,
            delta: false,
            use_delta: owned.use_delta,
            version: owned.version,
            version_epoch: owned.version_epoch,
        })
    }
}

/// `with` functions for a `ClientInfo` field.
pub mod client_info {
    use super::*;

    /// Writes a [`ClientInfoRecord`].
    pub fn serialize<S: Serializer>(info: &ClientInfo, s: S) -> Result<S::Ok, S::Error> {
        ClientInfoRecord::from(info).serialize(s)
    }

    /// Reads a [`ClientInfoRecord`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ClientInfo, D::Error> {
        OwnedClientInfo::deserialize(d).map(ClientInfo::from)
    }
}

mod optional_client_info {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ClientInfo>, D::Error> {
        Ok(Option::<OwnedClientInfo>::deserialize(d)?.map(ClientInfo::from))
    }
}

/// `with` functions for presence maps (`client id → info`).
pub mod client_info_map {
    use super::*;

    /// Writes each info as a [`ClientInfoRecord`].
    pub fn serialize<S: Serializer>(map: &BTreeMap<String, ClientInfo>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(id, info)| (id, ClientInfoRecord::from(info))))
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, ClientInfo>, D::Error> {
        let owned = BTreeMap::<String, OwnedClientInfo>::deserialize(d)?;
        Ok(owned.into_iter().map(|(id, info)| (id, info.into())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "publication")]
        publication: Publication,
    }

    fn round_trip(data: Payload, conn_info: Option<Payload>) -> (String, Publication) {
        let info = ClientInfo { user: "u".into(), client: "c".into(), conn_info, chan_info: None };
        let publication = Publication { data, info: Some(std::sync::Arc::new(info)), offset: 3, ..Default::default() };
        let json = serde_json::to_string(&Holder { publication }).expect("serializes");
        let back: Holder = serde_json::from_str(&json).expect("deserializes");
        (json, back.publication)
    }

    #[test]
    fn payloads_of_any_bytes_round_trip_exactly() {
        let cases: Vec<Payload> = vec![
            Payload::from(r#"{"a": [1, 2]}"#),
            Payload::new(vec![0, 255, 10, 13]),
            Payload::from(" {\"padded\":1}\n"),
            Payload::from(r#"{"b64":"aGk="}"#),
            Payload::from("\"text\""),
            Payload::default(),
        ];
        for data in cases {
            let (json, back) = round_trip(data.clone(), Some(data.clone()));
            assert_eq!(back.data, data, "{json}");
            assert_eq!(back.info.and_then(|i| i.conn_info.clone()), Some(data), "{json}");
        }
    }

    #[test]
    fn json_payloads_stay_readable_and_old_records_decode() {
        let (json, _) = round_trip(Payload::from(r#"{"x":1}"#), None);
        assert_eq!(json, r#"{"publication":{"data":{"x":1},"info":{"user":"u","client":"c"},"offset":3}}"#);
        let old: Holder = serde_json::from_str(r#"{"publication":{"data":{"b64":1},"tags":{"k":"v"}}}"#).expect("old");
        assert_eq!(old.publication.data.as_bytes(), br#"{"b64":1}"#);
        assert_eq!(old.publication.tags.get("k").map(String::as_str), Some("v"));
    }
}
