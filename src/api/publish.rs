//! `publish` and `broadcast`.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::ApiError;
use crate::channel::ResolvedChannel;
use crate::domain::{present, Payload, Publication};
use crate::node::Node;
use crate::registry::messages as registry;

/// `publish` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PublishRequest {
    channel: String,
    #[serde(deserialize_with = "present")]
    data: Option<Payload>,
    b64data: String,
    skip_history: bool,
    tags: BTreeMap<String, String>,
    idempotency_key: String,
    delta: bool,
    version: u64,
    version_epoch: String,
}

/// `broadcast` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct BroadcastRequest {
    channels: Vec<String>,
    #[serde(deserialize_with = "present")]
    data: Option<Payload>,
    b64data: String,
    skip_history: bool,
    tags: BTreeMap<String, String>,
    idempotency_key: String,
    delta: bool,
    version: u64,
    version_epoch: String,
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

/// The payload: `b64data` (any bytes, base64) wins over `data` (a JSON value, kept as sent).
/// Invalid base64 is 107; whether the payload may be empty is the channel's data format's call.
pub(super) fn payload(data: Option<Payload>, b64data: &str) -> Result<Payload, ApiError> {
    if b64data.is_empty() {
        return Ok(data.unwrap_or_default());
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64data).map_err(|_| ApiError::BadRequest)?;
    Ok(Payload::new(bytes))
}

pub(super) fn resolve(node: &Node, channel: &str) -> Result<ResolvedChannel, ApiError> {
    if channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    Ok(node.rules.resolve(channel)?)
}

/// What publish and broadcast share.
struct Options<'a> {
    tags: &'a BTreeMap<String, String>,
    skip_history: bool,
    idempotency_key: &'a str,
    delta: bool,
    version: u64,
    version_epoch: &'a str,
}

async fn publish_one(
    node: &Node,
    channel: &str,
    data: Payload,
    options: &Options<'_>,
) -> Result<PublishResult, ApiError> {
    let channel = resolve(node, channel)?;
    if !channel.namespace.data_format.accepts(data.as_bytes()) {
        return Err(ApiError::BadRequest);
    }
    let use_delta = options.delta || channel.namespace.options.delta_publish;
    let publication = Publication {
        data,
        tags: options.tags.clone(),
        use_delta,
        version: options.version,
        version_epoch: options.version_epoch.to_owned(),
        ..Default::default()
    };
    let idempotency_key = (!options.idempotency_key.is_empty()).then(|| options.idempotency_key.to_owned());
    let message = registry::Publish { channel, publication, skip_history: options.skip_history, idempotency_key };
    match node.registry.send(message).await {
        Ok(Ok(Some(position))) => Ok(PublishResult { offset: position.offset, epoch: position.epoch.to_string() }),
        Ok(Ok(None)) => Ok(PublishResult::default()),
        _ => Err(ApiError::Internal),
    }
}

pub(super) async fn publish(node: &Arc<Node>, req: PublishRequest) -> Result<PublishResult, ApiError> {
    if req.channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let data = payload(req.data, &req.b64data)?;
    let options = Options {
        tags: &req.tags,
        skip_history: req.skip_history,
        idempotency_key: &req.idempotency_key,
        delta: req.delta,
        version: req.version,
        version_epoch: &req.version_epoch,
    };
    publish_one(node, &req.channel, data, &options).await
}

/// `broadcast` result: one response per channel, in request order.
#[derive(Debug, Serialize)]
pub(super) struct BroadcastResult {
    responses: Vec<BroadcastResponse>,
}

#[derive(Debug, Serialize)]
struct BroadcastResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<PublishResult>,
}

pub(super) async fn broadcast(node: &Arc<Node>, req: BroadcastRequest) -> Result<BroadcastResult, ApiError> {
    if req.channels.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let data = payload(req.data, &req.b64data)?;
    let options = Options {
        tags: &req.tags,
        skip_history: req.skip_history,
        idempotency_key: &req.idempotency_key,
        delta: req.delta,
        version: req.version,
        version_epoch: &req.version_epoch,
    };
    let mut responses = Vec::with_capacity(req.channels.len());
    for channel in &req.channels {
        let outcome = publish_one(node, channel, data.clone(), &options).await;
        responses.push(match outcome {
            Ok(result) => BroadcastResponse { error: None, result: Some(result) },
            Err(error) => BroadcastResponse { error: Some(error.to_wire()), result: None },
        });
    }
    Ok(BroadcastResult { responses })
}
