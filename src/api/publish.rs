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

/// `publish` and `broadcast` request: the same fields, with `channel` for one and `channels`
/// for the other (a key the method does not use is ignored, as Go's decoder ignores unknown keys).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PublishRequest {
    pub(super) channel: String,
    pub(super) channels: Vec<String>,
    #[serde(deserialize_with = "present")]
    pub(super) data: Option<Payload>,
    pub(super) b64data: String,
    pub(super) skip_history: bool,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) idempotency_key: String,
    pub(super) delta: bool,
    pub(super) version: u64,
    pub(super) version_epoch: String,
}

/// `broadcast` request.
pub(super) type BroadcastRequest = PublishRequest;

impl PublishRequest {
    /// The payload (taken out of the request) and the options every target channel shares.
    fn split(&mut self) -> Result<(Payload, Options<'_>), ApiError> {
        let data = self.take_payload()?;
        Ok((data, self.options()))
    }

    fn take_payload(&mut self) -> Result<Payload, ApiError> {
        payload(self.data.take(), &self.b64data)
    }

    fn options(&self) -> Options<'_> {
        Options {
            tags: &self.tags,
            skip_history: self.skip_history,
            idempotency_key: &self.idempotency_key,
            delta: self.delta,
            version: self.version,
            version_epoch: &self.version_epoch,
        }
    }
}

/// `publish` result: the stream position when the channel keeps history.
#[derive(Debug, Default, Serialize)]
pub(super) struct PublishResult {
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) offset: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(super) epoch: String,
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

/// The registry's message publishing `data` to `channel`, after the channel's checks.
fn publish_message(
    node: &Node,
    channel: &str,
    data: Payload,
    options: &Options<'_>,
) -> Result<registry::Publish, ApiError> {
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
    Ok(registry::Publish { channel, publication, skip_history: options.skip_history, idempotency_key })
}

fn publish_result(outcome: registry::PublishOutcome) -> Result<PublishResult, ApiError> {
    match outcome {
        Ok(Some(position)) => Ok(PublishResult { offset: position.offset, epoch: position.epoch.to_string() }),
        Ok(None) => Ok(PublishResult::default()),
        Err(registry::PublishFailed::ChannelLimit) => Err(ApiError::LimitExceeded),
        Err(registry::PublishFailed::Unavailable) => Err(ApiError::Internal),
    }
}

async fn publish_one(
    node: &Node,
    channel: &str,
    data: Payload,
    options: &Options<'_>,
) -> Result<PublishResult, ApiError> {
    let message = publish_message(node, channel, data, options)?;
    publish_result(registry::publish(&node.registry, message).await)
}

/// Channels one registry message publishes to in a broadcast: one round trip to the registry
/// per slice rather than per channel.
const BROADCAST_SLICE: usize = 512;

/// Publishes to `channels` (a slice of a broadcast) in one registry message; one response per
/// channel, in order.
async fn broadcast_slice(
    node: &Node,
    channels: &[String],
    data: &Payload,
    options: &Options<'_>,
) -> Vec<BroadcastResponse> {
    let messages: Vec<Result<registry::Publish, ApiError>> =
        channels.iter().map(|channel| publish_message(node, channel, data.clone(), options)).collect();
    let (publishes, checked): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .map(|m| match m {
            Ok(publish) => (Some(publish), None),
            Err(error) => (None, Some(error)),
        })
        .unzip();
    let publishes: Vec<registry::Publish> = publishes.into_iter().flatten().collect();
    let mut outcomes = match node.registry.send(registry::PublishEach(publishes)).await {
        Ok(outcomes) => outcomes.into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    checked
        .into_iter()
        .map(|refused| {
            let result = match refused {
                Some(error) => Err(error),
                None => publish_result(outcomes.next().unwrap_or(Err(registry::PublishFailed::Unavailable))),
            };
            match result {
                Ok(result) => BroadcastResponse { error: None, result: Some(result) },
                Err(error) => BroadcastResponse { error: Some(error.to_wire()), result: None },
            }
        })
        .collect()
}

pub(super) async fn publish(node: &Arc<Node>, mut req: PublishRequest) -> Result<PublishResult, ApiError> {
    if req.channel.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let channel = std::mem::take(&mut req.channel);
    let (data, options) = req.split()?;
    publish_one(node, &channel, data, &options).await
}

/// `broadcast` result: one response per channel, in request order.
#[derive(Debug, Serialize)]
pub(super) struct BroadcastResult {
    pub(super) responses: Vec<BroadcastResponse>,
}

#[derive(Debug, Serialize)]
pub(super) struct BroadcastResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<ErrorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) result: Option<PublishResult>,
}

pub(super) async fn broadcast(node: &Arc<Node>, mut req: BroadcastRequest) -> Result<BroadcastResult, ApiError> {
    if req.channels.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let channels = std::mem::take(&mut req.channels);
    let (data, options) = req.split()?;
    let mut responses = Vec::with_capacity(channels.len());
    for slice in channels.chunks(BROADCAST_SLICE) {
        responses.extend(broadcast_slice(node, slice, &data, &options).await);
    }
    Ok(BroadcastResult { responses })
}

/// Bytes of responses gathered before they are handed to the socket.
const BROADCAST_CHUNK: usize = 16 * 1024;

/// `broadcast` over HTTP, answered as it runs: the body `{"result":{"responses":[...]}}` is
/// written in chunks while the channels are published to, in request order, so a broadcast to a
/// million channels never holds its whole answer (43 MB for a million). Only the request's own
/// errors (no channels, bad `b64data`) come before the first byte; per-channel errors are in
/// the responses, as in the buffered form. The publishing pauses while the client does not
/// read, and stops if it goes away.
pub(super) fn broadcast_streamed(
    node: Arc<Node>,
    mut req: BroadcastRequest,
) -> Result<impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>>, ApiError> {
    if req.channels.is_empty() {
        return Err(ApiError::BadRequest);
    }
    let data = req.take_payload()?;
    let started = std::time::Instant::now();
    let state = Some(Broadcasting { node, req, data, next: 0 });
    Ok(futures_util::stream::unfold(state, move |state| async move {
        let mut state = state?;
        let chunk = state.next_chunk().await;
        let done = state.next > state.req.channels.len();
        if done {
            crate::metrics::METRICS.api_call("broadcast", started.elapsed().as_secs_f64(), None);
        }
        Some((Ok(chunk), (!done).then_some(state)))
    }))
}

struct Broadcasting {
    node: Arc<Node>,
    req: BroadcastRequest,
    data: Payload,
    /// The next channel's index; one past the end once the closing bytes are written.
    next: usize,
}

impl Broadcasting {
    /// Publishes to the next channels and returns their responses as body bytes (with the
    /// envelope's opening before the first and its closing after the last).
    async fn next_chunk(&mut self) -> bytes::Bytes {
        let mut chunk = Vec::with_capacity(BROADCAST_CHUNK + 256);
        if self.next == 0 {
            chunk.extend_from_slice(br#"{"result":{"responses":["#);
        }
        let options = self.req.options();
        let channels = &self.req.channels;
        while self.next < channels.len() && chunk.len() < BROADCAST_CHUNK {
            let slice = &channels[self.next..channels.len().min(self.next + BROADCAST_SLICE)];
            for response in broadcast_slice(&self.node, slice, &self.data, &options).await {
                if self.next > 0 {
                    chunk.push(b',');
                }
                chunk.extend_from_slice(crate::protocol::reply::to_json(&response).as_bytes());
                self.next += 1;
            }
        }
        if self.next == self.req.channels.len() {
            chunk.extend_from_slice(b"]}}");
            self.next += 1;
        }
        chunk.into()
    }
}
