//! Conversions between the gRPC API's Protobuf messages and the HTTP API handlers' request and
//! result structs, so both APIs run the same handlers.
//!
//! Payloads (`data`, `info`) are bytes as they arrive: an empty `bytes` field is an absent one, as
//! in Centrifugo, where a nil slice is "not set".

use bytes::Bytes;

use super::proto;
use crate::api::error::ErrorBody;
use crate::api::queries::{self, Empty, SinceRequest};
use crate::api::{publish, users, ApiError};
use crate::domain::{ClientInfo, Payload, Publication};

/// A response message: `error` or `result`.
pub(super) trait Envelope {
    /// The `result` message.
    type Result;
    /// The response for a handler's outcome.
    fn answer(outcome: Result<Self::Result, proto::Error>) -> Self;
}

macro_rules! envelopes {
    ($($response:ident => $result:ident),* $(,)?) => {$(
        impl Envelope for proto::$response {
            type Result = proto::$result;
            fn answer(outcome: Result<proto::$result, proto::Error>) -> Self {
                match outcome {
                    Ok(result) => Self { error: None, result: Some(result) },
                    Err(error) => Self { error: Some(error), result: None },
                }
            }
        }
    )*};
}

envelopes! {
    PublishResponse => PublishResult,
    BroadcastResponse => BroadcastResult,
    SubscribeResponse => SubscribeResult,
    UnsubscribeResponse => UnsubscribeResult,
    DisconnectResponse => DisconnectResult,
    PresenceResponse => PresenceResult,
    PresenceStatsResponse => PresenceStatsResult,
    HistoryResponse => HistoryResult,
    HistoryRemoveResponse => HistoryRemoveResult,
    InfoResponse => InfoResult,
    RpcResponse => RpcResult,
    RefreshResponse => RefreshResult,
    ChannelsResponse => ChannelsResult,
}

impl From<ApiError> for proto::Error {
    fn from(error: ApiError) -> Self {
        Self { code: error.code(), message: error.to_string() }
    }
}

impl From<ErrorBody> for proto::Error {
    fn from(error: ErrorBody) -> Self {
        Self { code: error.code, message: error.message }
    }
}

/// A `bytes` field as a payload; empty is absent.
fn payload(bytes: Bytes) -> Option<Payload> {
    (!bytes.is_empty()).then(|| Payload::new(bytes))
}

fn since(position: proto::StreamPosition) -> SinceRequest {
    SinceRequest { offset: position.offset, epoch: position.epoch }
}

// Requests.

/// `publish` and `broadcast` share one request struct, with `channel` for one and `channels`
/// for the other.
impl From<proto::PublishRequest> for publish::PublishRequest {
    fn from(r: proto::PublishRequest) -> Self {
        Self {
            channel: r.channel,
            channels: Vec::new(),
            data: payload(r.data),
            b64data: r.b64data,
            skip_history: r.skip_history,
            tags: r.tags,
            idempotency_key: r.idempotency_key,
            delta: r.delta,
            version: r.version,
            version_epoch: r.version_epoch,
        }
    }
}

impl From<proto::BroadcastRequest> for publish::PublishRequest {
    fn from(r: proto::BroadcastRequest) -> Self {
        Self {
            channel: String::new(),
            channels: r.channels,
            data: payload(r.data),
            b64data: r.b64data,
            skip_history: r.skip_history,
            tags: r.tags,
            idempotency_key: r.idempotency_key,
            delta: r.delta,
            version: r.version,
            version_epoch: r.version_epoch,
        }
    }
}

fn bool_value(value: Option<proto::BoolValue>) -> Option<users::BoolValue> {
    value.map(|v| users::BoolValue { value: v.value })
}

impl From<proto::SubscribeRequest> for users::SubscribeRequest {
    fn from(r: proto::SubscribeRequest) -> Self {
        Self {
            user: r.user,
            channel: r.channel,
            client: r.client,
            session: r.session,
            info: payload(r.info),
            b64info: r.b64info,
            data: payload(r.data),
            b64data: r.b64data,
            recover_since: r.recover_since.map(since),
            expire_at: r.expire_at,
            overrides: r.r#override.map(|o| users::OverrideRequest {
                presence: bool_value(o.presence),
                join_leave: bool_value(o.join_leave),
                force_push_join_leave: bool_value(o.force_push_join_leave),
                force_positioning: bool_value(o.force_positioning),
                force_recovery: bool_value(o.force_recovery),
            }),
        }
    }
}

impl From<proto::UnsubscribeRequest> for users::UnsubscribeRequest {
    fn from(r: proto::UnsubscribeRequest) -> Self {
        Self { user: r.user, channel: r.channel, client: r.client, session: r.session }
    }
}

impl From<proto::DisconnectRequest> for users::DisconnectRequest {
    fn from(r: proto::DisconnectRequest) -> Self {
        Self {
            user: r.user,
            client: r.client,
            session: r.session,
            whitelist: r.whitelist,
            disconnect: r.disconnect.map(|d| users::DisconnectObject { code: d.code, reason: d.reason }),
        }
    }
}

impl From<proto::RefreshRequest> for users::RefreshRequest {
    fn from(r: proto::RefreshRequest) -> Self {
        Self {
            user: r.user,
            client: r.client,
            session: r.session,
            expired: r.expired,
            expire_at: r.expire_at,
            info: payload(r.info),
        }
    }
}

/// The requests that name one channel.
macro_rules! channel_request {
    ($($message:ident),*) => {$(
        impl From<proto::$message> for queries::ChannelRequest {
            fn from(r: proto::$message) -> Self {
                Self { channel: r.channel }
            }
        }
    )*};
}

channel_request!(PresenceRequest, PresenceStatsRequest, HistoryRemoveRequest);

impl From<proto::HistoryRequest> for queries::HistoryRequest {
    fn from(r: proto::HistoryRequest) -> Self {
        Self { channel: r.channel, limit: r.limit, since: r.since.map(since), reverse: r.reverse }
    }
}

impl From<proto::ChannelsRequest> for queries::ChannelsRequest {
    fn from(r: proto::ChannelsRequest) -> Self {
        Self { pattern: r.pattern }
    }
}

impl From<proto::InfoRequest> for queries::InfoRequest {
    fn from(_: proto::InfoRequest) -> Self {
        Self {}
    }
}

/// `params` is not read: gyre has no server-side RPC extensions (every method is 104).
impl From<proto::RpcRequest> for queries::RpcRequest {
    fn from(r: proto::RpcRequest) -> Self {
        Self { method: r.method }
    }
}

// Results.

impl From<publish::PublishResult> for proto::PublishResult {
    fn from(r: publish::PublishResult) -> Self {
        Self { offset: r.offset, epoch: r.epoch }
    }
}

impl From<publish::BroadcastResult> for proto::BroadcastResult {
    fn from(r: publish::BroadcastResult) -> Self {
        let responses = r
            .responses
            .into_iter()
            .map(|response| proto::PublishResponse {
                error: response.error.map(Into::into),
                result: response.result.map(Into::into),
            })
            .collect();
        Self { responses }
    }
}

/// Results without fields.
macro_rules! empty_results {
    ($($result:ident),*) => {$(
        impl From<Empty> for proto::$result {
            fn from(_: Empty) -> Self {
                Self::default()
            }
        }
    )*};
}

empty_results!(SubscribeResult, UnsubscribeResult, DisconnectResult, HistoryRemoveResult, RefreshResult, RpcResult);

fn bytes_of(payload: Option<&Payload>) -> Bytes {
    payload.map(Payload::to_bytes).unwrap_or_default()
}

impl From<&ClientInfo> for proto::ClientInfo {
    fn from(info: &ClientInfo) -> Self {
        Self {
            user: info.user.to_string(),
            client: info.client.to_string(),
            conn_info: bytes_of(info.conn_info.as_ref()),
            chan_info: bytes_of(info.chan_info.as_ref()),
        }
    }
}

impl From<queries::PresenceResult> for proto::PresenceResult {
    fn from(r: queries::PresenceResult) -> Self {
        Self { presence: r.presence.iter().map(|(client, info)| (client.to_string(), info.into())).collect() }
    }
}

impl From<queries::PresenceStatsResult> for proto::PresenceStatsResult {
    fn from(r: queries::PresenceStatsResult) -> Self {
        Self { num_clients: r.num_clients, num_users: r.num_users }
    }
}

impl From<&Publication> for proto::Publication {
    fn from(p: &Publication) -> Self {
        Self {
            data: p.data.to_bytes(),
            info: p.info.as_deref().map(Into::into),
            offset: p.offset,
            tags: p.tags.clone(),
        }
    }
}

/// History over gRPC carries any payload, binary included (the JSON API cannot).
impl From<queries::HistoryResult> for proto::HistoryResult {
    fn from(r: queries::HistoryResult) -> Self {
        Self {
            publications: r.publications.iter().map(|p| p.as_ref().into()).collect(),
            epoch: r.epoch,
            offset: r.offset,
        }
    }
}

/// Counts in `uint32` fields, saturating.
fn count(value: impl TryInto<u32>) -> u32 {
    value.try_into().unwrap_or(u32::MAX)
}

impl From<queries::ChannelsResult> for proto::ChannelsResult {
    fn from(r: queries::ChannelsResult) -> Self {
        let channels = r
            .channels
            .into_iter()
            .map(|(name, info)| (name, proto::ChannelInfo { num_clients: count(info.num_clients) }))
            .collect();
        Self { channels }
    }
}

impl From<queries::InfoResult> for proto::InfoResult {
    fn from(r: queries::InfoResult) -> Self {
        let nodes = r
            .nodes
            .into_iter()
            .map(|n| proto::NodeResult {
                uid: n.uid,
                name: n.name,
                version: n.version,
                num_clients: count(n.num_clients),
                num_users: count(n.num_users),
                num_channels: count(n.num_channels),
                uptime: count(n.uptime),
                metrics: None,
                process: None,
                num_subs: count(n.num_subs),
            })
            .collect();
        Self { nodes }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn empty_bytes_are_an_absent_payload_and_binary_is_kept() {
        let request: publish::PublishRequest = proto::PublishRequest {
            channel: "c".into(),
            data: Bytes::from_static(&[0, 159, 146, 150]),
            ..Default::default()
        }
        .into();
        assert_eq!(request.channel, "c");
        assert_eq!(request.data.as_ref().map(Payload::as_bytes), Some(&[0, 159, 146, 150][..]));
        let request: publish::PublishRequest = proto::BroadcastRequest::default().into();
        assert!(request.data.is_none() && request.channel.is_empty());
    }

    #[test]
    fn publications_carry_their_bytes_info_and_tags() {
        let publication = Publication {
            data: Payload::new(vec![1, 2, 255]),
            offset: 7,
            tags: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            info: Some(Arc::new(ClientInfo {
                user: "u".into(),
                client: "c".into(),
                conn_info: Some(Payload::new(&b"{}"[..])),
                chan_info: None,
            })),
            ..Default::default()
        };
        let converted = proto::Publication::from(&publication);
        assert_eq!(converted.data.as_ref(), &[1, 2, 255]);
        assert_eq!(converted.offset, 7);
        assert_eq!(converted.tags["k"], "v");
        let info = converted.info.expect("info");
        assert_eq!((info.user.as_str(), info.client.as_str(), info.conn_info.as_ref()), ("u", "c", &b"{}"[..]));
        assert!(info.chan_info.is_empty());
    }

    #[test]
    fn an_error_goes_in_the_envelope() {
        let response = proto::PublishResponse::answer(Err(ApiError::UnknownChannel.into()));
        assert_eq!(response.error, Some(proto::Error { code: 102, message: "unknown channel".into() }));
        assert!(response.result.is_none());
    }
}
