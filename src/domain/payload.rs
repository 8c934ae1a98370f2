//! Application bytes: publication data, connection and channel info, RPC and subscribe data.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Opaque application bytes, carried exactly as they arrived (Centrifugo's `Raw`). Nothing
/// inside gyre looks at them except the JSON encoding, which embeds them as a JSON value and so
/// can carry only payloads that are JSON (protocol-extensions.md §1.4).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Payload(Bytes);

impl Payload {
    /// Wraps bytes as they are.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// A JSON value's exact text, without copying it.
    pub fn from_json(raw: Box<RawValue>) -> Self {
        let text: Box<str> = raw.into();
        Self(Bytes::from(String::from(text)))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, shared (a cheap reference-count increment).
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The payload as one JSON value to embed in a JSON frame, or `None` when it is not JSON.
    ///
    /// Raw `\n`/`\r` bytes are dropped as Centrifugo's `Raw.MarshalJSON` drops `\n`: in valid
    /// JSON they can only be whitespace (inside strings they are escaped), so the value is the
    /// same and the newline-delimited frame stays intact. Empty bytes are `null`.
    pub fn as_json(&self) -> Option<Cow<'_, RawValue>> {
        if self.0.is_empty() {
            return Some(Cow::Owned(null()));
        }
        if !self.0.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            return serde_json::from_slice::<&RawValue>(&self.0).ok().map(Cow::Borrowed);
        }
        let compact: Vec<u8> = self.0.iter().copied().filter(|b| !matches!(b, b'\n' | b'\r')).collect();
        serde_json::from_slice::<&RawValue>(&compact).ok().map(|raw| Cow::Owned(raw.to_owned()))
    }

    /// The bytes as one JSON string (how delta subscriptions of the JSON protocol carry payloads
    /// and patches, protocol-extensions.md §2.5); `None` when they are not UTF-8.
    pub fn to_json_string(&self) -> Option<Payload> {
        let text = std::str::from_utf8(&self.0).ok()?;
        serde_json::to_string(text).ok().map(Payload::new)
    }

    /// The payload as a JSON value whose text is exactly these bytes (no whitespace around it,
    /// nothing dropped), so that writing and reading it back gives the same bytes.
    pub fn as_exact_json(&self) -> Option<&RawValue> {
        serde_json::from_slice::<&RawValue>(&self.0).ok().filter(|raw| raw.get().len() == self.0.len())
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_default()
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) => write!(f, "Payload({text:?})"),
            Err(_) => write!(f, "Payload({} bytes)", self.0.len()),
        }
    }
}

impl From<&str> for Payload {
    fn from(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }
}

/// The JSON form embeds the bytes raw; a payload that is not JSON fails to serialize, which the
/// JSON encoders turn into Centrifugo's 3506 "inappropriate protocol".
impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_json() {
            Some(raw) => raw.serialize(s),
            None => Err(serde::ser::Error::custom(NOT_JSON)),
        }
    }
}

/// What a JSON encoder says when a payload cannot be embedded.
pub const NOT_JSON: &str = "payload is not JSON";

/// Any JSON value, kept as its exact text (`null` included).
impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self::from_json)
    }
}

/// For `#[serde(deserialize_with)]` on `Option<Payload>` fields: a present `null` is kept as the
/// payload `null` rather than read as absent.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Payload>, D::Error> {
    Payload::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_embedding_drops_raw_newlines_only() {
        let payload = Payload::from("{\n  \"a\": \"x\\ny\"\r\n}");
        assert_eq!(payload.as_json().expect("json").get(), "{  \"a\": \"x\\ny\"}");
        assert_eq!(payload.as_bytes(), b"{\n  \"a\": \"x\\ny\"\r\n}", "the bytes themselves are kept");
    }

    #[test]
    fn binary_payloads_do_not_serialize_as_json() {
        let payload = Payload::new(vec![0xff, 0x00, 0x01]);
        assert!(payload.as_json().is_none());
        assert!(serde_json::to_string(&payload).is_err());
        assert!(Payload::from("not json").as_json().is_none());
        assert_eq!(serde_json::to_string(&Payload::default()).expect("null"), "null");
    }

    #[test]
    fn json_strings_escape_the_text_and_refuse_other_bytes() {
        let quoted = Payload::from("{\"a\":\"x\ny\"}\n").to_json_string().expect("utf-8");
        assert_eq!(quoted.as_bytes(), br#""{\"a\":\"x\ny\"}\n""#);
        assert!(Payload::new(vec![0xff]).to_json_string().is_none());
    }

    #[test]
    fn exact_json_excludes_surrounding_whitespace() {
        assert_eq!(Payload::from("[1, 2]").as_exact_json().map(RawValue::get), Some("[1, 2]"));
        assert!(Payload::from(" [1]").as_exact_json().is_none());
        assert!(Payload::from("[1]\n").as_exact_json().is_none());
        assert!(Payload::default().as_exact_json().is_none());
    }

    #[test]
    fn json_text_is_kept_exactly_including_null() {
        let payload: Payload = serde_json::from_str("{\"a\":  [1,2] }").expect("json");
        assert_eq!(payload.as_bytes(), b"{\"a\":  [1,2] }");
        let null: Payload = serde_json::from_str("null").expect("json");
        assert_eq!(null.as_bytes(), b"null");
    }
}
