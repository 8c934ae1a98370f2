//! Read-side methods: `presence`, `presence_stats`, `history`, `history_remove`, `channels`,
//! `info`, `rpc`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::publish::resolve;
use super::ApiError;
use crate::channel::history::{HistoryError, HistoryQuery};
use crate::channel::ResolvedChannel;
use crate::domain::{ChannelName, ClientId, ClientInfo, Publication, StreamPosition};
use crate::node::{Node, VERSION};
use crate::registry::messages as registry;

/// Requests that name one channel.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChannelRequest {
    pub(super) channel: String,
}

#[derive(Debug, Serialize)]
pub(super) struct PresenceResult {
    pub(super) presence: BTreeMap<ClientId, ClientInfo>,
}

fn presence_channel(node: &Node, channel: &str) -> Result<ChannelName, ApiError> {
    let channel = resolve(node, channel)?;
    if !channel.namespace.options.presence {
        return Err(ApiError::NotAvailable);
    }
    Ok(channel.name)
}

pub(super) async fn presence(node: &Arc<Node>, req: ChannelRequest) -> Result<PresenceResult, ApiError> {
    let channel = presence_channel(node, &req.channel)?;
    match node.registry.send(registry::Presence { channel }).await {
        Ok(Ok(presence)) => Ok(PresenceResult { presence }),
        _ => Err(ApiError::Internal),
    }
}

#[derive(Debug, Serialize)]
pub(super) struct PresenceStatsResult {
    pub(super) num_clients: u32,
    pub(super) num_users: u32,
}

pub(super) async fn presence_stats(node: &Arc<Node>, req: ChannelRequest) -> Result<PresenceStatsResult, ApiError> {
    let channel = presence_channel(node, &req.channel)?;
    match node.registry.send(registry::PresenceStatsOf { channel }).await {
        Ok(Ok(stats)) => Ok(PresenceStatsResult { num_clients: stats.num_clients, num_users: stats.num_users }),
        _ => Err(ApiError::Internal),
    }
}

/// `history` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct HistoryRequest {
    pub(super) channel: String,
    pub(super) limit: i32,
    pub(super) since: Option<SinceRequest>,
    pub(super) reverse: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SinceRequest {
    pub(super) offset: u64,
    pub(super) epoch: String,
}

#[derive(Debug, Serialize)]
pub(super) struct HistoryResult {
    pub(super) publications: Vec<Arc<Publication>>,
    pub(super) epoch: String,
    pub(super) offset: u64,
}

fn history_channel(node: &Node, channel: &str) -> Result<ResolvedChannel, ApiError> {
    let channel = resolve(node, channel)?;
    if !channel.namespace.options.history_enabled() {
        return Err(ApiError::NotAvailable);
    }
    Ok(channel)
}

pub(super) async fn history(node: &Arc<Node>, req: HistoryRequest) -> Result<HistoryResult, ApiError> {
    let channel = history_channel(node, &req.channel)?;
    let query = HistoryQuery {
        since: req.since.map(|s| StreamPosition { offset: s.offset, epoch: s.epoch.into() }),
        // The server API has no clamp: -1 means everything.
        limit: usize::try_from(req.limit).ok(),
        reverse: req.reverse,
    };
    match node.registry.send(registry::History { channel, query }).await {
        Ok(Ok(Ok(page))) => Ok(HistoryResult {
            publications: page.publications,
            epoch: page.position.epoch.to_string(),
            offset: page.position.offset,
        }),
        Ok(Ok(Err(HistoryError::EpochMismatch))) => Err(ApiError::UnrecoverablePosition),
        _ => Err(ApiError::Internal),
    }
}

#[derive(Debug, Serialize)]
pub(super) struct Empty {}

pub(super) async fn history_remove(node: &Arc<Node>, req: ChannelRequest) -> Result<Empty, ApiError> {
    let channel = history_channel(node, &req.channel)?;
    node.registry.do_send(registry::RemoveHistory { channel });
    Ok(Empty {})
}

/// `channels` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChannelsRequest {
    pub(super) pattern: String,
}

#[derive(Debug, Serialize)]
pub(super) struct ChannelsResult {
    pub(super) channels: BTreeMap<String, ChannelInfo>,
}

#[derive(Debug, Serialize)]
pub(super) struct ChannelInfo {
    pub(super) num_clients: usize,
}

pub(super) async fn channels(node: &Arc<Node>, req: ChannelsRequest) -> Result<ChannelsResult, ApiError> {
    let pattern = match req.pattern.as_str() {
        "" => None,
        pattern => Some(super::glob::compile(pattern).ok_or(ApiError::Internal)?),
    };
    let channels = node
        .registry
        .send(registry::ListChannels { pattern, glob: req.pattern.clone(), cluster: true })
        .await
        .map_err(|_| ApiError::Internal)?;
    Ok(ChannelsResult {
        channels: channels.into_iter().map(|(name, num_clients)| (name, ChannelInfo { num_clients })).collect(),
    })
}

/// `info` request (no fields).
#[derive(Debug, Default, Deserialize)]
pub(super) struct InfoRequest {}

#[derive(Debug, Serialize)]
pub(super) struct InfoResult {
    pub(super) nodes: Vec<NodeInfo>,
}

#[derive(Debug, Serialize)]
pub(super) struct NodeInfo {
    pub(super) uid: String,
    pub(super) name: String,
    pub(super) version: String,
    pub(super) num_clients: usize,
    pub(super) num_users: usize,
    pub(super) num_channels: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) uptime: u64,
    pub(super) num_subs: usize,
}

pub(super) async fn info(node: &Arc<Node>, _: InfoRequest) -> Result<InfoResult, ApiError> {
    let stats = node.registry.send(registry::GetStats).await.map_err(|_| ApiError::Internal)?;
    let peers = match &node.cluster {
        Some(bridge) => bridge.send(crate::cluster::GetNodes).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let mut nodes = vec![NodeInfo {
        uid: node.uid.clone(),
        name: node.name.clone(),
        version: format!("{VERSION} OSS"),
        num_clients: stats.num_clients,
        num_users: stats.num_users,
        num_channels: stats.num_channels,
        uptime: node.started.elapsed().as_secs(),
        num_subs: stats.num_subs,
    }];
    nodes.extend(peers.into_iter().map(|peer| NodeInfo {
        uid: peer.uid,
        name: peer.name,
        version: peer.version,
        num_clients: peer.num_clients,
        num_users: peer.num_users,
        num_channels: peer.num_channels,
        uptime: peer.uptime,
        num_subs: peer.num_subs,
    }));
    Ok(InfoResult { nodes })
}

/// `rpc` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RpcRequest {
    pub(super) method: String,
}

pub(super) async fn rpc(_: &Arc<Node>, req: RpcRequest) -> Result<Empty, ApiError> {
    if req.method.is_empty() {
        return Err(ApiError::BadRequest);
    }
    Err(ApiError::NotFound)
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}
