//! Client → server commands (protocol-client.md §1.4, §3).
//!
//! [`Command`] is a struct with one optional field per request kind, not an enum: the wire rule is
//! "first present request key wins", `id` sits beside the request, and unknown keys (SDKs add
//! fields over time) must not fail parsing. JSON `null` anywhere means "absent".

use std::collections::HashMap;

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

use crate::domain::{present, Payload};

/// Deserializes `null` (or a missing key) as the type's default.
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One command line. `id == 0` marks a pong (or a `send`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Command {
    /// Correlation id; 0 for pongs and `send`.
    #[serde(deserialize_with = "nullable")]
    pub id: u32,
    /// `connect` request.
    pub connect: Option<ConnectRequest>,
    /// `subscribe` request.
    pub subscribe: Option<SubscribeRequest>,
    /// `unsubscribe` request.
    pub unsubscribe: Option<ChannelRequest>,
    /// `publish` request.
    pub publish: Option<PublishRequest>,
    /// `presence` request.
    pub presence: Option<ChannelRequest>,
    /// `presence_stats` request.
    pub presence_stats: Option<ChannelRequest>,
    /// `history` request.
    pub history: Option<HistoryRequest>,
    /// `ping` request (no SDK sends it).
    pub ping: Option<IgnoredAny>,
    /// `send` (fire-and-forget message).
    pub send: Option<IgnoredAny>,
    /// `rpc` request.
    pub rpc: Option<RpcRequest>,
    /// `refresh` (connection token renewal).
    pub refresh: Option<RefreshRequest>,
    /// `sub_refresh` (subscription token renewal).
    pub sub_refresh: Option<SubRefreshRequest>,
}

/// The request a command carries, in the reference dispatcher's precedence order.
#[derive(Debug)]
pub enum Request {
    /// `connect`.
    Connect(ConnectRequest),
    /// `subscribe`.
    Subscribe(SubscribeRequest),
    /// `unsubscribe`.
    Unsubscribe(ChannelRequest),
    /// `publish`.
    Publish(PublishRequest),
    /// `presence`.
    Presence(ChannelRequest),
    /// `presence_stats`.
    PresenceStats(ChannelRequest),
    /// `history`.
    History(HistoryRequest),
    /// `rpc`.
    Rpc(RpcRequest),
    /// `send`.
    Send,
    /// `refresh`.
    Refresh(RefreshRequest),
    /// `sub_refresh`.
    SubRefresh(SubRefreshRequest),
    /// `ping` command (answered with an empty result).
    Ping,
}

impl Command {
    /// The token this command carries, and whether it is a subscription token.
    pub fn token(&self) -> Option<(&str, bool)> {
        let connection =
            self.connect.as_ref().map(|c| c.token.as_str()).or(self.refresh.as_ref().map(|r| r.token.as_str()));
        if let Some(token) = connection {
            return (!token.is_empty()).then_some((token, false));
        }
        let subscription =
            self.subscribe.as_ref().map(|s| s.token.as_str()).or(self.sub_refresh.as_ref().map(|s| s.token.as_str()));
        subscription.filter(|token| !token.is_empty()).map(|token| (token, true))
    }

    /// Parses one line of a frame.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// A pong is an id-less command without `send`.
    pub fn is_pong(&self) -> bool {
        self.id == 0 && self.send.is_none()
    }

    /// The metrics `frame_type` of this command (its method, or `client_pong`).
    pub fn frame_type(&self) -> &'static str {
        if self.is_pong() {
            return "client_pong";
        }
        [
            ("connect", self.connect.is_some()),
            ("subscribe", self.subscribe.is_some()),
            ("unsubscribe", self.unsubscribe.is_some()),
            ("publish", self.publish.is_some()),
            ("presence", self.presence.is_some()),
            ("presence_stats", self.presence_stats.is_some()),
            ("history", self.history.is_some()),
            ("rpc", self.rpc.is_some()),
            ("send", self.send.is_some()),
            ("refresh", self.refresh.is_some()),
            ("sub_refresh", self.sub_refresh.is_some()),
            ("ping", self.ping.is_some()),
        ]
        .into_iter()
        .find_map(|(name, present)| present.then_some(name))
        .unwrap_or("unknown")
    }

    /// Takes the request out, first present key wins; `None` when no known request is set.
    pub fn into_request(self) -> Option<Request> {
        let Command {
            connect,
            subscribe,
            unsubscribe,
            publish,
            presence,
            presence_stats,
            history,
            ping,
            send,
            rpc,
            refresh,
            sub_refresh,
            ..
        } = self;
        connect
            .map(Request::Connect)
            .or_else(|| subscribe.map(Request::Subscribe))
            .or_else(|| unsubscribe.map(Request::Unsubscribe))
            .or_else(|| publish.map(Request::Publish))
            .or_else(|| presence.map(Request::Presence))
            .or_else(|| presence_stats.map(Request::PresenceStats))
            .or_else(|| history.map(Request::History))
            .or_else(|| rpc.map(Request::Rpc))
            .or_else(|| send.map(|_| Request::Send))
            .or_else(|| refresh.map(Request::Refresh))
            .or_else(|| sub_refresh.map(Request::SubRefresh))
            .or_else(|| ping.map(|_| Request::Ping))
    }
}

/// `connect` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConnectRequest {
    /// Connection JWT.
    #[serde(deserialize_with = "nullable")]
    pub token: String,
    /// App data (only meaningful to a connect proxy).
    #[serde(deserialize_with = "present")]
    pub data: Option<Payload>,
    /// Recovery hints for server-side subscriptions.
    #[serde(deserialize_with = "nullable")]
    pub subs: HashMap<String, SubscribeRequest>,
    /// SDK name (observability only).
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// App version (observability only).
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    /// Header emulation: headers a client that cannot set real ones sends (passed to proxies
    /// that list them in `emulated_headers`).
    #[serde(deserialize_with = "nullable")]
    pub headers: HashMap<String, String>,
}

/// `subscribe` request (also the value type of `connect.subs`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscribeRequest {
    /// Channel name.
    #[serde(deserialize_with = "nullable")]
    pub channel: String,
    /// Subscription JWT.
    #[serde(deserialize_with = "nullable")]
    pub token: String,
    /// Recover from `offset`/`epoch`.
    #[serde(deserialize_with = "nullable")]
    pub recover: bool,
    /// Epoch of the client's last position.
    #[serde(deserialize_with = "nullable")]
    pub epoch: String,
    /// Last offset the client processed.
    #[serde(deserialize_with = "nullable")]
    pub offset: u64,
    /// Custom data (proxy use; ignored).
    #[serde(deserialize_with = "present")]
    pub data: Option<Payload>,
    /// Client asks for positioning.
    #[serde(deserialize_with = "nullable")]
    pub positioned: bool,
    /// Client asks for recovery.
    #[serde(deserialize_with = "nullable")]
    pub recoverable: bool,
    /// Client asks for join/leave pushes.
    #[serde(deserialize_with = "nullable")]
    pub join_leave: bool,
    /// Delta compression (`fossil`); gyre does not negotiate deltas.
    #[serde(deserialize_with = "nullable")]
    pub delta: String,
    /// Tags filter (not supported → 107).
    pub tf: Option<IgnoredAny>,
    /// Bit 1: compaction offered (ignored); bit 2: reject unrecovered with 112.
    #[serde(deserialize_with = "nullable")]
    pub flag: i64,
    /// Subscription type (0 = stream; map/shared-poll types are not supported).
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub kind: i32,
}

impl SubscribeRequest {
    /// Request flag bit 2: answer 112 instead of an unrecovered success.
    pub fn rejects_unrecovered(&self) -> bool {
        self.flag & 2 != 0
    }
}

/// Requests that only name a channel (`unsubscribe`, `presence`, `presence_stats`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelRequest {
    /// Channel name.
    #[serde(deserialize_with = "nullable")]
    pub channel: String,
}

/// `publish` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PublishRequest {
    /// Channel name.
    #[serde(deserialize_with = "nullable")]
    pub channel: String,
    /// Payload.
    #[serde(deserialize_with = "present")]
    pub data: Option<Payload>,
}

/// A stream position as clients send it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct StreamPositionRequest {
    /// Offset.
    #[serde(deserialize_with = "nullable")]
    pub offset: u64,
    /// Epoch.
    #[serde(deserialize_with = "nullable")]
    pub epoch: String,
}

/// `history` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HistoryRequest {
    /// Channel name.
    #[serde(deserialize_with = "nullable")]
    pub channel: String,
    /// 0 = position only, < 0 = up to the server's clamp, > 0 = at most N.
    #[serde(deserialize_with = "nullable")]
    pub limit: i32,
    /// Return publications after (or, reversed, before) this position.
    pub since: Option<StreamPositionRequest>,
    /// Newest first.
    #[serde(deserialize_with = "nullable")]
    pub reverse: bool,
}

/// `rpc` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RpcRequest {
    /// Method name.
    #[serde(deserialize_with = "nullable")]
    pub method: String,
    /// Payload.
    #[serde(deserialize_with = "present")]
    pub data: Option<Payload>,
}

/// `refresh` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RefreshRequest {
    /// New connection JWT.
    #[serde(deserialize_with = "nullable")]
    pub token: String,
}

/// `sub_refresh` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubRefreshRequest {
    /// Channel name.
    #[serde(deserialize_with = "nullable")]
    pub channel: String,
    /// New subscription JWT.
    #[serde(deserialize_with = "nullable")]
    pub token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_style_connect_with_id_last_parses() {
        let cmd = Command::parse(r#"{"connect":{"token":"t","name":"js"},"id":1}"#).unwrap();
        assert_eq!(cmd.id, 1);
        match cmd.into_request() {
            Some(Request::Connect(c)) => assert_eq!(c.token, "t"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn python_style_spaces_and_nulls_parse() {
        let cmd =
            Command::parse(r#"{"id": 2, "subscribe": {"channel": "a", "offset": null, "epoch": null, "flag": 1}}"#)
                .unwrap();
        let Some(Request::Subscribe(s)) = cmd.into_request() else { panic!("not a subscribe") };
        assert_eq!((s.channel.as_str(), s.offset, s.flag), ("a", 0, 1));
    }

    #[test]
    fn unknown_keys_are_ignored_and_empty_command_is_a_pong() {
        let cmd = Command::parse(r#"{"future":{"x":1}}"#).unwrap();
        assert!(cmd.is_pong());
        assert!(cmd.into_request().is_none());
        assert!(Command::parse("{}").unwrap().is_pong());
    }

    #[test]
    fn wrong_types_fail_to_parse() {
        assert!(Command::parse(r#"{"id":1,"subscribe":{"channel":"a","offset":"3"}}"#).is_err());
        assert!(Command::parse(r#"[1,2]"#).is_err());
        assert!(Command::parse(r#"{"id":-1}"#).is_err());
    }

    #[test]
    fn publish_keeps_raw_data_including_null() {
        let cmd = Command::parse(r#"{"id":3,"publish":{"channel":"c","data":{"a": [1, 2]}}}"#).unwrap();
        let Some(Request::Publish(p)) = cmd.into_request() else { panic!("not a publish") };
        assert_eq!(p.data.unwrap().as_bytes(), br#"{"a": [1, 2]}"#);
        let cmd = Command::parse(r#"{"id":4,"publish":{"channel":"c","data":null}}"#).unwrap();
        let Some(Request::Publish(p)) = cmd.into_request() else { panic!("not a publish") };
        assert_eq!(p.data.unwrap().as_bytes(), b"null");
    }

    #[test]
    fn send_without_id_is_not_a_pong() {
        let cmd = Command::parse(r#"{"send":{"data":{}}}"#).unwrap();
        assert!(!cmd.is_pong());
        assert!(matches!(cmd.into_request(), Some(Request::Send)));
    }
}
