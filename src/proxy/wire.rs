//! Proxy requests and responses as Centrifugo's `proxyproto` defines them
//! (protocol-extensions.md §6.2–6.3): JSON bodies over HTTP, with `data`/`info`/`meta` embedded
//! as raw JSON values, or `b64data` when the proxy uses `binary_encoding`.

use std::collections::HashMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::Payload;

/// A request to any proxy: the fields every request has, plus those of its kind (empty ones are
/// left out, as Go's `omitempty` does).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProxyRequest {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub transport: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub protocol: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub encoding: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub b64data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Box<RawValue>>,
    /// Raw bytes of the payload, for the gRPC encoding (which carries bytes either way).
    #[serde(skip)]
    pub raw_data: Option<Payload>,
    /// Raw bytes of the connection meta, for the gRPC encoding.
    #[serde(skip)]
    pub raw_meta: Option<Payload>,
}

/// The payload does not fit the proxy's encoding: JSON mode needs JSON data.
#[derive(Debug)]
pub struct NotJsonData;

impl ProxyRequest {
    /// Puts the client's payload in `data` (JSON) or `b64data` (`binary_encoding`).
    pub fn set_data(&mut self, data: Option<&Payload>, binary: bool) -> Result<(), NotJsonData> {
        let Some(data) = data.filter(|d| !d.is_empty()) else { return Ok(()) };
        self.raw_data = Some(data.clone());
        if binary {
            self.b64data = base64::engine::general_purpose::STANDARD.encode(data.as_bytes());
        } else {
            self.data = Some(raw_json(data).ok_or(NotJsonData)?);
        }
        Ok(())
    }

    /// Puts the connection meta in `meta` (it is JSON: it came from a token or a proxy result).
    pub fn set_meta(&mut self, meta: Option<&Payload>) {
        if let Some(meta) = meta {
            self.meta = raw_json(meta);
            self.raw_meta = Some(meta.clone());
        }
    }
}

fn raw_json(payload: &Payload) -> Option<Box<RawValue>> {
    payload.as_json().map(|raw| raw.into_owned())
}

/// Any proxy response: one of `result`, `error`, `disconnect` (or none of them).
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub struct ProxyResponse<R> {
    #[serde(default)]
    pub result: Option<R>,
    #[serde(default)]
    pub error: Option<ErrorAnswer>,
    #[serde(default)]
    pub disconnect: Option<DisconnectAnswer>,
}

impl<R> Default for ProxyResponse<R> {
    fn default() -> Self {
        Self { result: None, error: None, disconnect: None }
    }
}

/// `error` of a response: the client's command gets it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ErrorAnswer {
    pub code: u32,
    pub message: String,
    pub temporary: bool,
}

/// `disconnect` of a response: the connection is closed with it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct DisconnectAnswer {
    pub code: u32,
    pub reason: String,
}

/// A JSON value or base64 text that could not be turned into bytes.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not valid base64")]
pub struct BadBase64(pub &'static str);

/// `b64<field>` if set (decoded), else `<field>`.
fn b64_first(value: Option<Payload>, b64: &str, field: &'static str) -> Result<Option<Payload>, BadBase64> {
    if !b64.is_empty() {
        return decode_b64(b64, field).map(Some);
    }
    Ok(value)
}

/// `<field>` if set, else `b64<field>` (decoded).
fn data_first(value: Option<Payload>, b64: &str, field: &'static str) -> Result<Option<Payload>, BadBase64> {
    match value {
        Some(value) => Ok(Some(value)),
        None if !b64.is_empty() => decode_b64(b64, field).map(Some),
        None => Ok(None),
    }
}

fn decode_b64(b64: &str, field: &'static str) -> Result<Payload, BadBase64> {
    base64::engine::general_purpose::STANDARD.decode(b64).map(Payload::new).map_err(|_| BadBase64(field))
}

/// A JSON value embedded as it is (`null` = absent).
fn raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Payload>, D::Error> {
    let raw = Option::<Box<RawValue>>::deserialize(d)?;
    Ok(raw.filter(|raw| raw.get() != "null").map(Payload::from_json))
}

/// Bytes of a gRPC field (empty = absent).
pub(super) fn bytes_field(bytes: bytes::Bytes) -> Option<Payload> {
    (!bytes.is_empty()).then(|| Payload::new(bytes))
}

/// `override` of a subscribe result: each present value replaces the namespace's.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct SubscribeOverride {
    pub presence: Option<BoolValue>,
    pub join_leave: Option<BoolValue>,
    pub force_push_join_leave: Option<BoolValue>,
    pub force_recovery: Option<BoolValue>,
    pub force_positioning: Option<BoolValue>,
}

/// `{"value": bool}`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct BoolValue {
    pub value: bool,
}

/// One channel of a connect result's `subs`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscribeOptions {
    #[serde(deserialize_with = "raw")]
    pub(super) info: Option<Payload>,
    pub(super) b64info: String,
    #[serde(deserialize_with = "raw")]
    pub(super) data: Option<Payload>,
    pub(super) b64data: String,
    #[serde(rename = "override")]
    pub override_: Option<SubscribeOverride>,
}

impl SubscribeOptions {
    pub fn info(&mut self) -> Result<Option<Payload>, BadBase64> {
        b64_first(self.info.take(), &self.b64info, "b64info")
    }

    pub fn data(&mut self) -> Result<Option<Payload>, BadBase64> {
        b64_first(self.data.take(), &self.b64data, "b64data")
    }
}

/// `result` of a connect response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConnectResult {
    pub user: String,
    pub expire_at: i64,
    #[serde(deserialize_with = "raw")]
    pub(super) info: Option<Payload>,
    pub(super) b64info: String,
    #[serde(deserialize_with = "raw")]
    pub(super) data: Option<Payload>,
    pub(super) b64data: String,
    pub channels: Vec<String>,
    pub subs: HashMap<String, SubscribeOptions>,
    #[serde(deserialize_with = "raw")]
    pub meta: Option<Payload>,
}

impl ConnectResult {
    pub fn info(&mut self) -> Result<Option<Payload>, BadBase64> {
        b64_first(self.info.take(), &self.b64info, "b64info")
    }

    pub fn data(&mut self) -> Result<Option<Payload>, BadBase64> {
        b64_first(self.data.take(), &self.b64data, "b64data")
    }
}

/// `result` of a refresh response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RefreshResult {
    pub expired: bool,
    pub expire_at: i64,
    #[serde(deserialize_with = "raw")]
    pub(super) info: Option<Payload>,
    pub(super) b64info: String,
    #[serde(deserialize_with = "raw")]
    pub meta: Option<Payload>,
}

impl RefreshResult {
    pub fn info(&mut self) -> Result<Option<Payload>, BadBase64> {
        b64_first(self.info.take(), &self.b64info, "b64info")
    }
}

/// `result` of a subscribe response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscribeResult {
    pub expire_at: i64,
    #[serde(deserialize_with = "raw")]
    pub(super) info: Option<Payload>,
    pub(super) b64info: String,
    #[serde(deserialize_with = "raw")]
    pub(super) data: Option<Payload>,
    pub(super) b64data: String,
    #[serde(rename = "override")]
    pub override_: Option<SubscribeOverride>,
}

impl SubscribeResult {
    pub fn info(&mut self) -> Result<Option<Payload>, BadBase64> {
        b64_first(self.info.take(), &self.b64info, "b64info")
    }

    pub fn data(&mut self) -> Result<Option<Payload>, BadBase64> {
        b64_first(self.data.take(), &self.b64data, "b64data")
    }
}

/// `result` of a publish response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PublishResult {
    #[serde(deserialize_with = "raw")]
    pub(super) data: Option<Payload>,
    pub(super) b64data: String,
    pub skip_history: bool,
}

impl PublishResult {
    /// The data to publish instead of the client's, if the backend rewrote it.
    pub fn data(&mut self) -> Result<Option<Payload>, BadBase64> {
        data_first(self.data.take(), &self.b64data, "b64data")
    }
}

/// `result` of an RPC response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RpcResult {
    #[serde(deserialize_with = "raw")]
    pub(super) data: Option<Payload>,
    pub(super) b64data: String,
}

impl RpcResult {
    pub fn data(&mut self) -> Result<Option<Payload>, BadBase64> {
        b64_first(self.data.take(), &self.b64data, "b64data")
    }
}

/// `result` of a sub_refresh response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubRefreshResult {
    pub expired: bool,
    pub expire_at: i64,
    #[serde(deserialize_with = "raw")]
    pub(super) info: Option<Payload>,
    pub(super) b64info: String,
}

impl SubRefreshResult {
    pub fn info(&mut self) -> Result<Option<Payload>, BadBase64> {
        b64_first(self.info.take(), &self.b64info, "b64info")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_leave_out_empty_fields_and_embed_json_data() {
        let mut request = ProxyRequest {
            client: "c1".into(),
            transport: "websocket",
            protocol: "json",
            encoding: "json",
            ..Default::default()
        };
        request.set_data(Some(&Payload::from(r#"{"a":1}"#)), false).unwrap();
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            json,
            r#"{"client":"c1","transport":"websocket","protocol":"json","encoding":"json","data":{"a":1}}"#
        );
        assert!(request.set_data(Some(&Payload::new(vec![0xff, 0])), false).is_err());
    }

    #[test]
    fn binary_encoding_sends_base64() {
        let mut request = ProxyRequest::default();
        request.set_data(Some(&Payload::new(vec![0xff, 0])), true).unwrap();
        assert_eq!(serde_json::to_value(&request).unwrap()["b64data"], "/wA=");
    }

    #[test]
    fn responses_decode_result_error_and_disconnect_and_ignore_unknown_keys() {
        let ok: ProxyResponse<ConnectResult> =
            serde_json::from_str(r#"{"result":{"user":"u","b64info":"eyJ4IjoxfQ==","extra":1},"what":true}"#).unwrap();
        let mut result = ok.result.unwrap();
        assert_eq!(result.user, "u");
        assert_eq!(result.info().unwrap().unwrap().as_bytes(), br#"{"x":1}"#);
        let error: ProxyResponse<ConnectResult> =
            serde_json::from_str(r#"{"error":{"code":1000,"message":"nope"}}"#).unwrap();
        assert_eq!(error.error.unwrap(), ErrorAnswer { code: 1000, message: "nope".into(), temporary: false });
        let disconnect: ProxyResponse<RpcResult> =
            serde_json::from_str(r#"{"disconnect":{"code":4000,"reason":"bye"}}"#).unwrap();
        assert_eq!(disconnect.disconnect.unwrap().code, 4000);
        let mut bad: ProxyResponse<RpcResult> = serde_json::from_str(r#"{"result":{"b64data":"***"}}"#).unwrap();
        assert!(bad.result.as_mut().unwrap().data().is_err());
    }

    #[test]
    fn publish_data_wins_over_b64data_and_rpc_b64data_wins_over_data() {
        let mut publish: PublishResult = serde_json::from_str(r#"{"data":{"a":1},"b64data":"AA=="}"#).unwrap();
        assert_eq!(publish.data().unwrap().unwrap().as_bytes(), br#"{"a":1}"#);
        let mut rpc: RpcResult = serde_json::from_str(r#"{"data":{"a":1},"b64data":"AA=="}"#).unwrap();
        assert_eq!(rpc.data().unwrap().unwrap().as_bytes(), [0]);
    }
}
