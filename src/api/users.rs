//! Methods acting on a user's live connections: `subscribe`, `unsubscribe`, `disconnect`,
//! `refresh`. They reach every matching connection on this node through the registry.

use std::sync::Arc;

use serde::Deserialize;

use super::publish::resolve;
use super::queries::{Empty, SinceRequest};
use super::ApiError;
use crate::client::messages::{ServerSubscribe, SubscribeOverrides};
use crate::cluster::envelope::{ControlCommand, Overrides, UserTarget};
use crate::cluster::SendControl;
use crate::domain::{present, ClientId, Payload, StreamPosition};
use crate::node::Node;
use crate::protocol::Disconnect;
use crate::registry::messages::{ToUser, UserAction};

/// `{"value": bool}` (protobuf BoolValue).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct BoolValue {
    pub(super) value: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct OverrideRequest {
    pub(super) presence: Option<BoolValue>,
    pub(super) join_leave: Option<BoolValue>,
    pub(super) force_push_join_leave: Option<BoolValue>,
    pub(super) force_positioning: Option<BoolValue>,
    pub(super) force_recovery: Option<BoolValue>,
}

/// `subscribe` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SubscribeRequest {
    pub(super) user: String,
    pub(super) channel: String,
    pub(super) client: String,
    pub(super) session: String,
    #[serde(deserialize_with = "present")]
    pub(super) info: Option<Payload>,
    pub(super) b64info: String,
    #[serde(deserialize_with = "present")]
    pub(super) data: Option<Payload>,
    pub(super) b64data: String,
    pub(super) recover_since: Option<SinceRequest>,
    pub(super) expire_at: i64,
    #[serde(rename = "override")]
    pub(super) overrides: Option<OverrideRequest>,
}

/// Bytes from `b64<name>` (wins when non-empty) or the JSON value of `<name>`.
fn optional_payload(json: Option<Payload>, b64: &str) -> Result<Option<Payload>, ApiError> {
    if b64.is_empty() {
        return Ok(json);
    }
    super::publish::payload(None, b64).map(Some)
}

/// Applies to this node's connections, then (cluster mode) tells every other node.
async fn everywhere(
    node: &Node,
    local: ToUser,
    remote: impl FnOnce(UserTarget) -> ControlCommand,
) -> Result<(), ApiError> {
    let target = UserTarget {
        user: local.user.clone(),
        client: local.client.as_ref().map(ToString::to_string).unwrap_or_default(),
        session: local.session.clone().unwrap_or_default(),
    };
    node.registry.send(local).await.map_err(|_| ApiError::Internal)?;
    if let Some(bridge) = &node.cluster {
        match bridge.send(SendControl(remote(target))).await {
            Ok(Ok(())) => {}
            _ => return Err(ApiError::Internal),
        }
    }
    Ok(())
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
    let remote = |target| ControlCommand::Subscribe {
        target,
        channel: subscribe.channel.name.to_string(),
        info: subscribe.info.clone(),
        data: subscribe.data.clone(),
        recover_since: subscribe.recover_since.as_ref().map(|p| (p.offset, p.epoch.to_string())),
        expire_at: subscribe.expire_at,
        overrides: Overrides {
            presence: subscribe.overrides.presence,
            join_leave: subscribe.overrides.join_leave,
            force_push_join_leave: subscribe.overrides.force_push_join_leave,
            force_positioning: subscribe.overrides.force_positioning,
            force_recovery: subscribe.overrides.force_recovery,
        },
    };
    let command_for_peers = remote;
    let message = target(req.user, req.client, req.session, UserAction::Subscribe(subscribe.clone()));
    everywhere(node, message, command_for_peers).await?;
    Ok(Empty {})
}

/// `unsubscribe` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct UnsubscribeRequest {
    pub(super) user: String,
    pub(super) channel: String,
    pub(super) client: String,
    pub(super) session: String,
}

pub(super) async fn unsubscribe(node: &Arc<Node>, req: UnsubscribeRequest) -> Result<Empty, ApiError> {
    if req.channel.is_empty() {
        return Ok(Empty {});
    }
    let channel = node.rules.resolve(&req.channel)?;
    let name = channel.name.to_string();
    let message = target(req.user, req.client, req.session, UserAction::Unsubscribe(channel.name));
    everywhere(node, message, |target| ControlCommand::Unsubscribe { target, channel: name }).await?;
    Ok(Empty {})
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DisconnectObject {
    pub(super) code: u32,
    pub(super) reason: String,
}

/// `disconnect` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DisconnectRequest {
    pub(super) user: String,
    pub(super) client: String,
    pub(super) session: String,
    pub(super) whitelist: Vec<String>,
    pub(super) disconnect: Option<DisconnectObject>,
}

pub(super) async fn disconnect(node: &Arc<Node>, req: DisconnectRequest) -> Result<Empty, ApiError> {
    let disconnect = match req.disconnect {
        None => Disconnect::FORCE_NO_RECONNECT,
        Some(d) => Disconnect::custom(u16::try_from(d.code).map_err(|_| ApiError::BadRequest)?, &d.reason),
    };
    let (code, reason) = (disconnect.code, disconnect.reason.to_string());
    let mut message = target(req.user, req.client, req.session, UserAction::Disconnect(disconnect));
    message.whitelist = req.whitelist.iter().map(|c| ClientId::from(c.as_str())).collect();
    let whitelist = req.whitelist;
    everywhere(node, message, |target| ControlCommand::Disconnect { target, whitelist, code, reason }).await?;
    Ok(Empty {})
}

/// `refresh` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RefreshRequest {
    pub(super) user: String,
    pub(super) client: String,
    pub(super) session: String,
    pub(super) expired: bool,
    pub(super) expire_at: i64,
    #[serde(deserialize_with = "present")]
    pub(super) info: Option<Payload>,
}

pub(super) async fn refresh(node: &Arc<Node>, req: RefreshRequest) -> Result<Empty, ApiError> {
    let (expired, expire_at, info) = (req.expired, (req.expire_at > 0).then_some(req.expire_at), req.info);
    let action = UserAction::Refresh { expired, expire_at, info: info.clone() };
    let message = target(req.user, req.client, req.session, action);
    everywhere(node, message, |target| ControlCommand::Refresh { target, expired, expire_at, info }).await?;
    Ok(Empty {})
}
