//! Server → client replies and pushes (protocol-client.md §1.4, §2–§4).
//!
//! Every success reply carries its result key even when the result is empty
//! (`{"id":5,"publish":{}}`): SDKs dereference it. Everything else follows Centrifugo's
//! omit-empty rules, except the few fields that are always present (`ClientInfo.user/client`,
//! `presence`, `num_clients/num_users`, history `publications/epoch/offset`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use super::codes::ErrorBody;
use crate::domain::{ClientId, ClientInfo, Payload, Publication};

/// The server ping: an id-less, push-less object.
pub const PING: &str = "{}";

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}

/// Serializes a value that cannot fail to serialize (plain structs, validated raw JSON).
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|error| {
        tracing::error!(%error, "reply encoding failed; sending an empty object");
        "{}".to_owned()
    })
}

/// A reply or push holding a payload that is not JSON, which the JSON protocol cannot carry:
/// Centrifugo closes such a connection with 3506 "inappropriate protocol".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a payload is not JSON; the JSON protocol cannot carry it")]
pub struct NotJson;

/// Serializes a value holding payloads: the only way it can fail is a payload that is not JSON.
pub fn try_json<T: Serialize + ?Sized>(value: &T) -> Result<String, NotJson> {
    serde_json::to_string(value).map_err(|_| NotJson)
}

/// `{"id":N,"<method>":<result>}`.
pub fn reply<T: Serialize + ?Sized>(id: u32, method: &str, result: &T) -> Result<String, NotJson> {
    let body = try_json(result)?;
    let mut out = String::with_capacity(body.len() + method.len() + 16);
    let _ = write!(out, "{{\"id\":{id},\"{method}\":{body}}}");
    Ok(out)
}

/// `{"id":N,"error":{...}}`.
pub fn error_reply(id: u32, error: &ErrorBody) -> String {
    let body = to_json(error);
    format!("{{\"id\":{id},\"error\":{body}}}")
}

/// `{"push":{"channel":"<ch>","<kind>":<body>}}`.
pub fn push<T: Serialize + ?Sized>(channel: &str, kind: &str, body: &T) -> Result<String, NotJson> {
    Ok(push_json(channel, kind, &try_json(body)?, true))
}

/// A push as unidirectional transports send it, without the Reply wrapper:
/// `{"channel":"<ch>","<kind>":<body>}`, or `{"<kind>":<body>}` when no channel is involved.
pub fn uni_push<T: Serialize + ?Sized>(channel: &str, kind: &str, body: &T) -> Result<String, NotJson> {
    Ok(push_json(channel, kind, &try_json(body)?, false))
}

/// A push around an encoded `body`, in the Reply wrapper (`wrapped`) or bare; one allocation.
pub fn push_json(channel: &str, kind: &str, body: &str, wrapped: bool) -> String {
    let mut out = String::with_capacity(body.len() + channel.len() + kind.len() + 32);
    if wrapped {
        out.push_str("{\"push\":");
    }
    out.push('{');
    if !channel.is_empty() {
        out.push_str("\"channel\":");
        out.push_str(&to_json(channel));
        out.push(',');
    }
    let _ = write!(out, "\"{kind}\":{body}}}");
    if wrapped {
        out.push('}');
    }
    out
}

/// The `disconnect` push of unidirectional transports.
#[derive(Debug, Serialize)]
pub struct DisconnectPush<'a> {
    /// Disconnect code.
    pub code: u32,
    /// Reason.
    pub reason: &'a str,
}

/// An empty result object (`unsubscribe`, `publish`, `ping`, `rpc` without data).
#[derive(Debug, Default, Serialize)]
pub struct Empty {}

/// `connect` result.
#[derive(Debug, Default, Serialize)]
pub struct ConnectResult {
    /// New connection id (Py SDK requires it).
    pub client: String,
    /// Server version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The client must refresh its token before `ttl` runs out.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until expiry (≥ 1 whenever `expires`).
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Data for the application, from a connect proxy's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Payload>,
    /// Server-side subscriptions established at connect.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub subs: BTreeMap<String, SubscribeResult>,
    /// Ping interval in seconds.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ping: u32,
    /// The client must answer pings.
    #[serde(skip_serializing_if = "is_false")]
    pub pong: bool,
    /// Emulated transports: the session id `/emulation` requests name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session: String,
    /// Emulated transports: the node holding the session.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Server time, Unix milliseconds (`client.connect_include_server_time`).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub time: i64,
}

fn is_zero_i64(value: &i64) -> bool {
    *value == 0
}

/// `subscribe` result (also the value type of connect `subs` and of the `subscribe` push).
#[derive(Debug, Default, Clone, Serialize)]
pub struct SubscribeResult {
    /// The subscription expires; the client must `sub_refresh`.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until expiry (≥ 1 whenever `expires`).
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Recovery is on for this subscription.
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Current stream epoch.
    #[serde(skip_serializing_if = "str_is_empty")]
    pub epoch: Arc<str>,
    /// Recovered publications, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Arc<Publication>>,
    /// Recovery succeeded.
    #[serde(skip_serializing_if = "is_false")]
    pub recovered: bool,
    /// Stream offset (the client's own when recovered, the top otherwise).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Positioning is on.
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Custom data from the subscription token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Payload>,
    /// The request asked to recover.
    #[serde(skip_serializing_if = "is_false")]
    pub was_recovering: bool,
    /// Fossil delta was negotiated: publications of this subscription may be patches.
    #[serde(skip_serializing_if = "is_false")]
    pub delta: bool,
}

fn str_is_empty(value: &Arc<str>) -> bool {
    value.is_empty()
}

/// `rpc` result: the backend's answer (`data` left out when there is none).
#[derive(Debug, Default, Serialize)]
pub struct RpcResult {
    /// The RPC proxy's data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Payload>,
}

/// `presence` result; `presence` is always present.
#[derive(Debug, Default, Serialize)]
pub struct PresenceResult {
    /// Client id → info.
    pub presence: BTreeMap<ClientId, ClientInfo>,
}

/// `presence_stats` result; both counters always present.
#[derive(Debug, Default, Serialize)]
pub struct PresenceStatsResult {
    /// Connections in the channel.
    pub num_clients: u32,
    /// Distinct users in the channel.
    pub num_users: u32,
}

/// `history` result; all three keys always present.
#[derive(Debug, Default, Serialize)]
pub struct HistoryResult {
    /// Publications of the page.
    pub publications: Vec<Arc<Publication>>,
    /// Current epoch of the stream.
    pub epoch: Arc<str>,
    /// Current top offset of the stream.
    pub offset: u64,
}

/// `refresh` result.
#[derive(Debug, Default, Serialize)]
pub struct RefreshResult {
    /// Connection id (JS copies it; harmless).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client: String,
    /// Server version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The new token expires.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until the new expiry.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

/// `sub_refresh` result.
#[derive(Debug, Default, Serialize)]
pub struct SubRefreshResult {
    /// The new token expires.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until the new expiry.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

/// Body of `join` and `leave` pushes (`info` is required by both SDKs).
#[derive(Debug, Serialize)]
pub struct JoinLeave<'a> {
    /// Who joined or left.
    pub info: &'a ClientInfo,
}

/// Body of the `subscribe` push (a server-side subscription added while connected).
#[derive(Debug, Serialize)]
pub struct SubscribePush<'a> {
    /// Recovery is on.
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Stream epoch.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub epoch: &'a str,
    /// Stream offset.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Positioning is on.
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Custom data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a Payload>,
}

/// Body of the `unsubscribe` push; both fields required by the Py SDK.
#[derive(Debug, Serialize)]
pub struct UnsubscribePush<'a> {
    /// Unsubscribe code (2000 server unsubscribe, 2500 insufficient state, ...).
    pub code: u32,
    /// Reason, never empty.
    pub reason: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_results_keep_their_key() {
        assert_eq!(reply(5, "publish", &Empty {}).as_deref(), Ok(r#"{"id":5,"publish":{}}"#));
        assert_eq!(reply(2, "subscribe", &SubscribeResult::default()).as_deref(), Ok(r#"{"id":2,"subscribe":{}}"#));
    }

    #[test]
    fn connect_result_matches_reference_shape() {
        let result = ConnectResult {
            client: "c1".into(),
            version: "0.1.0".into(),
            expires: true,
            ttl: 3599,
            ping: 25,
            pong: true,
            ..Default::default()
        };
        assert_eq!(
            reply(1, "connect", &result).as_deref(),
            Ok(
                r#"{"id":1,"connect":{"client":"c1","version":"0.1.0","expires":true,"ttl":3599,"ping":25,"pong":true}}"#
            )
        );
    }

    #[test]
    fn history_and_presence_stats_always_have_their_fields() {
        assert_eq!(to_json(&HistoryResult::default()), r#"{"publications":[],"epoch":"","offset":0}"#);
        assert_eq!(to_json(&PresenceStatsResult::default()), r#"{"num_clients":0,"num_users":0}"#);
        assert_eq!(to_json(&PresenceResult::default()), r#"{"presence":{}}"#);
    }

    #[test]
    fn pushes_carry_channel_and_kind() {
        let body = UnsubscribePush { code: 2000, reason: "server unsubscribe" };
        assert_eq!(
            push("news", "unsubscribe", &body).as_deref(),
            Ok(r#"{"push":{"channel":"news","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}}"#)
        );
    }

    #[test]
    fn a_payload_that_is_not_json_fails_the_whole_push_or_reply() {
        let publication = Publication { data: Payload::new(vec![0xde, 0xad]), offset: 1, ..Default::default() };
        assert_eq!(push("news", "pub", &publication), Err(NotJson));
        let history = HistoryResult { publications: vec![publication.into()], ..Default::default() };
        assert_eq!(reply(3, "history", &history), Err(NotJson));
        let empty = Publication { offset: 2, ..Default::default() };
        assert_eq!(push("news", "pub", &empty).as_deref(), Ok(r#"{"push":{"channel":"news","pub":{"offset":2}}}"#));
    }
}
