//! One handler per API method. Requests keep `data` as raw JSON byte for byte.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::HttpResponse;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{decode, respond, ApiError};
use crate::channel::history::{HistoryError, HistoryQuery};
use crate::channel::ResolvedChannel;
use crate::domain::{frame_safe, ChannelName, ClientId, ClientInfo, Publication, RawJson, StreamPosition};
use crate::node::{Node, VERSION};
use crate::registry::messages as registry;

/// Methods this node serves; anything else under the prefix is a 404.
pub(super) const KNOWN: &[&str] = &[
    "publish",
    "broadcast",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "info",
    "rpc",
];

/// Decodes the body for `method`, runs it and wraps the outcome.
pub(super) async fn call(method: &str, body: &[u8], node: &Arc<Node>, transport_errors: bool) -> HttpResponse {
    macro_rules! run {
        ($handler:ident) => {
            match decode(body) {
                Ok(request) => respond($handler(node, request).await, transport_errors),
                Err(_) => super::bad_request(),
            }
        };
    }
    match method {
        "publish" => run!(publish),
        "broadcast" => run!(broadcast),
        "presence" => run!(presence),
        "presence_stats" => run!(presence_stats),
        "history" => run!(history),
        "history_remove" => run!(history_remove),
        "info" => run!(info),
        "rpc" => run!(rpc),
        _ => HttpResponse::NotFound().finish(),
    }
}

fn raw_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// `publish` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PublishRequest {
    channel: String,
    #[serde(deserialize_with = "raw_opt")]
    data: Option<Box<RawValue>>,
    b64data: String,
    skip_history: bool,
    tags: BTreeMap<String, String>,
    idempotency_key: String,
}

/// `broadcast` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct BroadcastRequest {
    channels: Vec<String>,
    #[serde(deserialize_with = "raw_opt")]
    data: Option<Box<RawValue>>,
    b64data: String,
    skip_history: bool,
    tags: BTreeMap<String, String>,
    idempotency_key: String,
}

/// `publish` result: the stream position when the channel keeps history.
#[derive(Debug, Default, Serialize)]
pub(super) struct PublishResult {
    #[serde(skip_serializing_if = "is_zero")]
    offset: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    epoch: String,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The payload: `b64data` (decoded; must be JSON for JSON clients) wins over `data`.
fn payload(data: Option<Box<RawValue>>, b64data: &str) -> Result<RawJson, ApiError> {
    if !b64data.is_empty() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64data)
            .map_err(|_| ApiError::BadRequest)?;
        let text = String::from_utf8(bytes).map_err(|_| ApiError::BadRequest)?;
        let raw = RawValue::from_string(text).map_err(|_| ApiError::BadRequest)?;
        return Ok(frame_safe(raw));
    }
    data.map(frame_safe).ok_or(ApiError::BadRequest)
}

fn resolve(node: &Node, channel: &str) -> Result<ResolvedChannel, ApiError> {
    if channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    Ok(node.rules.resolve(channel)?)
}

async fn publish_one(
    node: &Node,
    channel: &str,
    data: RawJson,
    tags: BTreeMap<String, String>,
    skip_history: bool,
) -> Result<PublishResult, ApiError> {
    let channel = resolve(node, channel)?;
    let publication = Publication {
        data,
        info: None,
        offset: 0,
        tags,
    };
    match node
        .registry
        .send(registry::Publish {
            channel,
            publication,
            skip_history,
        })
        .await
    {
        Ok(Ok(Some(position))) => Ok(PublishResult {
            offset: position.offset,
            epoch: position.epoch.to_string(),
        }),
        Ok(Ok(None)) => Ok(PublishResult::default()),
        _ => Err(ApiError::Internal),
    }
}

async fn publish(node: &Arc<Node>, req: PublishRequest) -> Result<PublishResult, ApiError> {
    if req.channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let data = payload(req.data, &req.b64data)?;
    let _ = &req.idempotency_key;
    publish_one(node, &req.channel, data, req.tags, req.skip_history).await
}

/// `broadcast` result: one response per channel, in request order.
#[derive(Debug, Serialize)]
pub(super) struct BroadcastResult {
    responses: Vec<BroadcastResponse>,
}

#[derive(Debug, Serialize)]
struct BroadcastResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<super::error::ErrorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<PublishResult>,
}

async fn broadcast(node: &Arc<Node>, req: BroadcastRequest) -> Result<BroadcastResult, ApiError> {
    if req.channels.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let data = payload(req.data, &req.b64data)?;
    let _ = &req.idempotency_key;
    let mut responses = Vec::with_capacity(req.channels.len());
    for channel in &req.channels {
        let outcome = publish_one(node, channel, data.clone(), req.tags.clone(), req.skip_history).await;
        responses.push(match outcome {
            Ok(result) => BroadcastResponse {
                error: None,
                result: Some(result),
            },
            Err(error) => BroadcastResponse {
                error: Some(error.to_wire()),
                result: None,
            },
        });
    }
    Ok(BroadcastResult { responses })
}

/// Requests that name one channel.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChannelRequest {
    channel: String,
}

#[derive(Debug, Serialize)]
pub(super) struct PresenceResult {
    presence: BTreeMap<ClientId, ClientInfo>,
}

fn presence_channel(node: &Node, channel: &str) -> Result<ChannelName, ApiError> {
    let channel = resolve(node, channel)?;
    if !channel.namespace.options.presence {
        return Err(ApiError::NotAvailable);
    }
    Ok(channel.name)
}

async fn presence(node: &Arc<Node>, req: ChannelRequest) -> Result<PresenceResult, ApiError> {
    let channel = presence_channel(node, &req.channel)?;
    match node.registry.send(registry::Presence { channel }).await {
        Ok(Ok(presence)) => Ok(PresenceResult { presence }),
        _ => Err(ApiError::Internal),
    }
}

#[derive(Debug, Serialize)]
pub(super) struct PresenceStatsResult {
    num_clients: u32,
    num_users: u32,
}

async fn presence_stats(node: &Arc<Node>, req: ChannelRequest) -> Result<PresenceStatsResult, ApiError> {
    let channel = presence_channel(node, &req.channel)?;
    match node.registry.send(registry::PresenceStatsOf { channel }).await {
        Ok(Ok(stats)) => Ok(PresenceStatsResult {
            num_clients: stats.num_clients,
            num_users: stats.num_users,
        }),
        _ => Err(ApiError::Internal),
    }
}

/// `history` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct HistoryRequest {
    channel: String,
    limit: i32,
    since: Option<SinceRequest>,
    reverse: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SinceRequest {
    offset: u64,
    epoch: String,
}

#[derive(Debug, Serialize)]
pub(super) struct HistoryResult {
    publications: Vec<Arc<Publication>>,
    epoch: String,
    offset: u64,
}

fn history_channel(node: &Node, channel: &str) -> Result<ResolvedChannel, ApiError> {
    let channel = resolve(node, channel)?;
    if !channel.namespace.options.history_enabled() {
        return Err(ApiError::NotAvailable);
    }
    Ok(channel)
}

async fn history(node: &Arc<Node>, req: HistoryRequest) -> Result<HistoryResult, ApiError> {
    let channel = history_channel(node, &req.channel)?;
    let query = HistoryQuery {
        since: req.since.map(|s| StreamPosition {
            offset: s.offset,
            epoch: s.epoch.into(),
        }),
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

async fn history_remove(node: &Arc<Node>, req: ChannelRequest) -> Result<Empty, ApiError> {
    let channel = history_channel(node, &req.channel)?;
    node.registry.do_send(registry::RemoveHistory { channel });
    Ok(Empty {})
}

/// `info` request (no fields).
#[derive(Debug, Default, Deserialize)]
pub(super) struct InfoRequest {}

#[derive(Debug, Serialize)]
pub(super) struct InfoResult {
    nodes: Vec<NodeInfo>,
}

#[derive(Debug, Serialize)]
struct NodeInfo {
    uid: String,
    name: String,
    version: String,
    num_clients: usize,
    num_users: usize,
    num_channels: usize,
    #[serde(skip_serializing_if = "is_zero")]
    uptime: u64,
    num_subs: usize,
}

async fn info(node: &Arc<Node>, _: InfoRequest) -> Result<InfoResult, ApiError> {
    let stats = node
        .registry
        .send(registry::GetStats)
        .await
        .map_err(|_| ApiError::Internal)?;
    Ok(InfoResult {
        nodes: vec![NodeInfo {
            uid: node.uid.clone(),
            name: node.name.clone(),
            version: format!("{VERSION} OSS"),
            num_clients: stats.num_clients,
            num_users: stats.num_users,
            num_channels: stats.num_channels,
            uptime: node.started.elapsed().as_secs(),
            num_subs: stats.num_subs,
        }],
    })
}

/// `rpc` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RpcRequest {
    method: String,
}

async fn rpc(_: &Arc<Node>, req: RpcRequest) -> Result<Empty, ApiError> {
    if req.method.is_empty() {
        return Err(ApiError::BadRequest);
    }
    Err(ApiError::NotFound)
}
