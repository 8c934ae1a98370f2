//! Methods acting on a user's live connections: `subscribe`, `unsubscribe`, `disconnect`,
//! `refresh`. They reach every matching connection on this node through the registry.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::publish::{raw_opt, resolve};
use super::queries::{Empty, SinceRequest};
use super::ApiError;
use crate::client::messages::{ServerSubscribe, SubscribeOverrides};
use crate::domain::{frame_safe, ClientId, RawJson, StreamPosition};
use crate::node::Node;
use crate::protocol::Disconnect;
use crate::registry::messages::{ToUser, UserAction};

/// `{"value": bool}` (protobuf BoolValue).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BoolValue {
    value: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OverrideRequest {
    presence: Option<BoolValue>,
    join_leave: Option<BoolValue>,
    force_push_join_leave: Option<BoolValue>,
    force_positioning: Option<BoolValue>,
    force_recovery: Option<BoolValue>,
}

/// `subscribe` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SubscribeRequest {
    user: String,
    channel: String,
    client: String,
    session: String,
    #[serde(deserialize_with = "raw_opt")]
    info: Option<Box<RawValue>>,
    b64info: String,
    #[serde(deserialize_with = "raw_opt")]
    data: Option<Box<RawValue>>,
    b64data: String,
    recover_since: Option<SinceRequest>,
    expire_at: i64,
    #[serde(rename = "override")]
    overrides: Option<OverrideRequest>,
}

/// Raw JSON from `b64<name>` (wins when non-empty) or `<name>`.
fn optional_payload(raw: Option<Box<RawValue>>, b64: &str) -> Result<Option<RawJson>, ApiError> {
    if b64.is_empty() {
        return Ok(raw.map(frame_safe));
    }
    super::publish::payload(None, b64).map(Some)
}

fn target(user: String, client: String, session: String, action: UserAction) -> ToUser {
    ToUser {
        user,
        client: (!client.is_empty()).then(|| ClientId::from(client.as_str())),
        session: (!session.is_empty()).then_some(session),
        whitelist: Vec::new(),
        action,
    }
}

pub(super) async fn subscribe(node: &Arc<Node>, req: SubscribeRequest) -> Result<Empty, ApiError> {
    let channel = resolve(node, &req.channel)?;
    let overrides = req.overrides.unwrap_or_default();
    let subscribe = ServerSubscribe {
        channel,
        info: optional_payload(req.info, &req.b64info)?,
        data: optional_payload(req.data, &req.b64data)?,
        recover_since: req.recover_since.map(|s| StreamPosition { offset: s.offset, epoch: s.epoch.into() }),
        expire_at: (req.expire_at > 0).then_some(req.expire_at),
        overrides: SubscribeOverrides {
            presence: overrides.presence.map(|v| v.value),
            join_leave: overrides.join_leave.map(|v| v.value),
            force_push_join_leave: overrides.force_push_join_leave.map(|v| v.value),
            force_positioning: overrides.force_positioning.map(|v| v.value),
            force_recovery: overrides.force_recovery.map(|v| v.value),
        },
    };
    let message = target(req.user, req.client, req.session, UserAction::Subscribe(subscribe));
    node.registry.send(message).await.map_err(|_| ApiError::Internal)?;
    Ok(Empty {})
}

/// `unsubscribe` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct UnsubscribeRequest {
    user: String,
    channel: String,
    client: String,
    session: String,
}

pub(super) async fn unsubscribe(node: &Arc<Node>, req: UnsubscribeRequest) -> Result<Empty, ApiError> {
    if req.channel.is_empty() {
        return Ok(Empty {});
    }
    let channel = node.rules.resolve(&req.channel)?;
    let message = target(req.user, req.client, req.session, UserAction::Unsubscribe(channel.name));
    node.registry.send(message).await.map_err(|_| ApiError::Internal)?;
    Ok(Empty {})
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DisconnectObject {
    code: u32,
    reason: String,
}

/// `disconnect` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DisconnectRequest {
    user: String,
    client: String,
    session: String,
    whitelist: Vec<String>,
    disconnect: Option<DisconnectObject>,
}

pub(super) async fn disconnect(node: &Arc<Node>, req: DisconnectRequest) -> Result<Empty, ApiError> {
    let disconnect = match req.disconnect {
        None => Disconnect::FORCE_NO_RECONNECT,
        Some(d) => Disconnect::custom(u16::try_from(d.code).map_err(|_| ApiError::BadRequest)?, &d.reason),
    };
    let mut message = target(req.user, req.client, req.session, UserAction::Disconnect(disconnect));
    message.whitelist = req.whitelist.iter().map(|c| ClientId::from(c.as_str())).collect();
    node.registry.send(message).await.map_err(|_| ApiError::Internal)?;
    Ok(Empty {})
}

/// `refresh` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RefreshRequest {
    user: String,
    client: String,
    session: String,
    expired: bool,
    expire_at: i64,
    #[serde(deserialize_with = "raw_opt")]
    info: Option<Box<RawValue>>,
}

pub(super) async fn refresh(node: &Arc<Node>, req: RefreshRequest) -> Result<Empty, ApiError> {
    let action = UserAction::Refresh {
        expired: req.expired,
        expire_at: (req.expire_at > 0).then_some(req.expire_at),
        info: req.info.map(frame_safe),
    };
    node.registry.send(target(req.user, req.client, req.session, action)).await.map_err(|_| ApiError::Internal)?;
    Ok(Empty {})
}
