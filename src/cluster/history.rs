//! Cluster-wide history on JetStream: every node reads and writes the same per-channel streams,
//! so offsets are contiguous across nodes and recovery works on any node.
//!
//! * One JetStream stream per [`HistoryShape`] (history size, meta TTL), subjects
//!   `<prefix>.history.<shape>.<channel>`: `max_messages_per_subject = history_size`, `max_age =
//!   history_meta_ttl` (the last message of a channel is its stream position, so it must outlive
//!   `history_ttl`, which is applied when reading), file storage (nats-server 2.9's memory store is
//!   ~20× slower with per-subject expectations).
//! * Offsets: a node publishes `offset + 1` with `Nats-Expected-Last-Subject-Sequence` set to the
//!   sequence of the channel's last message; when another node got there first the server refuses
//!   (10071), the node re-reads the top and tries again. Nothing can leave a hole.
//! * Live delivery: the stream's RePublish copies every *stored* message to
//!   `<prefix>.live.<shape>.<channel>`, which nodes with subscribers listen to. Refused and
//!   duplicate publishes are never re-published.
//! * Idempotency: `Nats-Msg-Id` (`<channel>:<key>`) within the stream's duplicate window; a
//!   repeat answers the first publication's position.
//! * An empty channel gets a position too: a *meta* message (no publication, offset = top) pins
//!   its epoch so every node reports the same one; `history_remove` writes a meta message with the
//!   old top, then purges everything before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use async_nats::HeaderMap;

mod reads;

pub use reads::Span;

use super::lossless;
use super::subjects::encode_token;
use crate::channel::history::{new_epoch, LastVersion};
use crate::channel::{HistoryShape, IDEMPOTENCY_WINDOW};
use crate::domain::{Publication, StreamPosition};
use crate::metrics::METRICS;

const OFFSET: &str = "Gyre-Offset";
const EPOCH: &str = "Gyre-Epoch";
const TIME: &str = "Gyre-Time";
const META: &str = "Gyre-Meta";
const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
const MSG_ID: &str = "Nats-Msg-Id";
/// How often a publish retries after losing a race for the next offset.
const MAX_ATTEMPTS: usize = 20;
/// Channels whose last message this node remembers (beyond that the cache starts over).
const MAX_CACHED_TOPS: usize = 65_536;
/// Bound on every JetStream request (publish ack, reads).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a history operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// NATS is not connected; nothing was written.
    #[error("NATS connection is down")]
    NotConnected,
    /// The namespace's history stream is not known (config changed without restart).
    #[error("no history stream for this namespace")]
    NoStream,
    /// JetStream refused or did not answer.
    #[error("JetStream: {0}")]
    JetStream(String),
}

fn js_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::JetStream(error.to_string())
}

/// The last message of a channel: where the next publication goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    /// Stream sequence of that message.
    pub seq: u64,
    /// Channel position.
    pub position: StreamPosition,
    /// Version of the publication there (default for meta messages).
    pub last_version: LastVersion,
}

impl Top {
    fn of(message: &StoredMessage) -> Self {
        let last_version = message
            .publication
            .as_ref()
            .map(|p| LastVersion { version: p.version, epoch: p.version_epoch.clone() })
            .unwrap_or_default();
        Top { seq: message.seq, position: message.position.clone(), last_version }
    }
}

/// One stored message of a channel.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Stream sequence.
    pub seq: u64,
    /// Offset and epoch.
    pub position: StreamPosition,
    /// The publication (offset set); `None` for a meta message.
    pub publication: Option<Publication>,
    /// When it was stored (Unix ms), for `history_ttl`.
    pub time_ms: u64,
    /// Stream sequence of the channel's message before it (0: none, it starts the channel's
    /// history or its epoch): what a backward read follows.
    pub prev: u64,
}

impl StoredMessage {
    /// Decodes a stored or re-published message; `None` if it was not written by gyre.
    pub fn decode(seq: u64, headers: Option<&HeaderMap>, payload: &[u8]) -> Option<Self> {
        let headers = headers?;
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        let offset = header(OFFSET)?.parse().ok()?;
        let epoch = header(EPOCH)?;
        let time_ms = header(TIME).and_then(|t| t.parse().ok()).unwrap_or(0);
        // Every write names the sequence it expects to follow; JetStream keeps the header.
        let prev = header(EXPECTED_LAST_SUBJECT_SEQUENCE).and_then(|s| s.parse().ok()).unwrap_or(0);
        let publication = if header(META).is_some() {
            None
        } else {
            let mut deserializer = serde_json::Deserializer::from_slice(payload);
            let mut publication = lossless::publication::deserialize(&mut deserializer).ok()?;
            publication.offset = offset;
            Some(publication)
        };
        Some(Self { seq, position: StreamPosition { offset, epoch: epoch.into() }, publication, time_ms, prev })
    }

    /// How long ago it was stored.
    pub fn age(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.time_ms))
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What a publish produced.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The publication's position.
    pub position: StreamPosition,
    /// A repeat of an idempotency key: nothing new was stored or delivered.
    pub repeat: bool,
}

/// Cluster-wide history streams (one handle per node, shared).
pub struct HistoryStore {
    client: async_nats::Client,
    js: jetstream::Context,
    prefix: String,
    streams: HashMap<HistoryShape, stream::Stream>,
    /// Last known top per channel subject; a hint only (a stale one costs one retry).
    tops: Mutex<HashMap<String, Top>>,
    /// Serializes this node's publishes per channel, so they don't race each other.
    publishing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    position_check: Duration,
}

impl HistoryStore {
    /// Creates (or updates) one stream per history shape of the config.
    pub async fn open(
        client: &async_nats::Client,
        prefix: &str,
        shapes: &[HistoryShape],
        replicas: usize,
    ) -> anyhow::Result<Self> {
        let js = jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client.clone());
        let mut streams = HashMap::new();
        for shape in shapes {
            let config = stream_config(prefix, *shape, replicas);
            let name = config.name.clone();
            let stream = match js.get_stream(&name).await {
                Ok(mut existing) => {
                    let current =
                        existing.info().await.map(|i| (i.config.max_messages_per_subject, i.config.num_replicas));
                    if current.ok() != Some((config.max_messages_per_subject, config.num_replicas)) {
                        js.update_stream(&config).await.map_err(|e| anyhow::anyhow!("cannot update {name}: {e}"))?;
                    }
                    existing
                }
                Err(_) => {
                    js.get_or_create_stream(config).await.map_err(|e| anyhow::anyhow!("cannot create {name}: {e}"))?
                }
            };
            streams.insert(*shape, stream);
        }
        Ok(Self {
            client: client.clone(),
            js,
            prefix: prefix.to_owned(),
            streams,
            tops: Mutex::new(HashMap::new()),
            publishing: Mutex::new(HashMap::new()),
            position_check: Duration::from_secs(40),
        })
    }

    /// Where a channel's publications are stored.
    pub fn history_subject(&self, shape: HistoryShape, channel: &str) -> String {
        format!("{}.history.{}.{}", self.prefix, shape_token(shape), encode_token(channel))
    }

    /// Where stored publications of a channel are re-published for live delivery.
    pub fn live_subject(&self, shape: HistoryShape, channel: &str) -> String {
        format!("{}.live.{}.{}", self.prefix, shape_token(shape), encode_token(channel))
    }

    /// The `<prefix>.live.` part every live subject starts with.
    pub fn live_prefix(&self) -> String {
        format!("{}.live.", self.prefix)
    }

    fn stream(&self, shape: HistoryShape) -> Result<&stream::Stream, StoreError> {
        self.streams.get(&shape).ok_or(StoreError::NoStream)
    }

    fn ensure_connected(&self) -> Result<(), StoreError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err(StoreError::NotConnected),
        }
    }

    /// Stores a publication with the channel's next offset.
    pub async fn publish(
        &self,
        shape: HistoryShape,
        channel: &str,
        publication: &Publication,
        idempotency_key: Option<&str>,
    ) -> Result<Stored, StoreError> {
        if let Err(error) = self.ensure_connected() {
            METRICS.broker_publish_error("publication");
            return Err(error);
        }
        let subject = self.history_subject(shape, channel);
        let lock = self.channel_lock(&subject);
        let _serial = lock.lock().await;
        let record = lossless::PublicationRecord::from(publication);
        let payload = bytes::Bytes::from(serde_json::to_vec(&record).map_err(js_error)?);
        // Encoded like the channel: a key is any text, and a NATS header value takes no line breaks.
        let msg_id = idempotency_key.map(|key| format!("{}:{}", encode_token(channel), encode_token(key)));
        let outcome = self.publish_next(shape, &subject, (publication, payload), msg_id.as_deref()).await;
        drop(_serial);
        self.forget_lock(&subject, lock);
        match &outcome {
            Ok(_) => METRICS.broker_sent("publication"),
            Err(_) => METRICS.broker_publish_error("publication"),
        }
        outcome
    }

    /// Appends after the channel's last message (optimistically, on the cached top); a
    /// publication whose version is outdated is dropped and answered with the top's position.
    async fn publish_next(
        &self,
        shape: HistoryShape,
        subject: &str,
        (publication, payload): (&Publication, bytes::Bytes),
        msg_id: Option<&str>,
    ) -> Result<Stored, StoreError> {
        let last_version = LastVersion { version: publication.version, epoch: publication.version_epoch.clone() };
        for _ in 0..MAX_ATTEMPTS {
            let mut top = match self.cached_top(subject) {
                Some(top) => Some(top),
                None => self.read_top(shape, subject).await?,
            };
            if top.as_ref().is_some_and(|t| publication.is_outdated(t.last_version.version, &t.last_version.epoch)) {
                // Suppress only on what is really the top, not on a cached hint.
                top = self.read_top(shape, subject).await?;
                if let Some(top) =
                    top.as_ref().filter(|t| publication.is_outdated(t.last_version.version, &t.last_version.epoch))
                {
                    return Ok(Stored { position: top.position.clone(), repeat: true });
                }
            }
            let (position, expected) = next_position(top.as_ref());
            let mut headers = position_headers(&position);
            headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE, expected.to_string().as_str());
            if let Some(id) = msg_id {
                headers.insert(MSG_ID, id);
            }
            match self.send(subject, headers, payload.clone()).await {
                Ok(ack) if ack.duplicate => {
                    let original = self.read_seq(shape, ack.sequence).await?;
                    return Ok(Stored { position: original.position, repeat: true });
                }
                Ok(ack) => {
                    let top = Top { seq: ack.sequence, position: position.clone(), last_version: last_version.clone() };
                    self.remember_top(subject, top);
                    return Ok(Stored { position, repeat: false });
                }
                Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
                    self.tops.lock().map(|mut t| t.remove(subject)).ok();
                }
                Err(error) => return Err(js_error(error)),
            }
        }
        Err(StoreError::JetStream(format!("gave up after {MAX_ATTEMPTS} conflicting publishes to one channel")))
    }

    async fn send(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<jetstream::publish::PublishAck, jetstream::context::PublishError> {
        self.js.publish_with_headers(subject.to_owned(), headers, payload).await?.await
    }

    /// The channel's position, pinning a fresh epoch (meta message) if it has none yet.
    pub async fn position(&self, shape: HistoryShape, channel: &str) -> Result<StreamPosition, StoreError> {
        self.ensure_connected()?;
        let subject = self.history_subject(shape, channel);
        for _ in 0..MAX_ATTEMPTS {
            if let Some(top) = self.read_top(shape, &subject).await? {
                return Ok(top.position);
            }
            let position = StreamPosition { offset: 0, epoch: new_epoch() };
            match self.write_meta(&subject, &position, 0).await {
                Ok(_) => return Ok(position),
                // Another node pinned the epoch first: read theirs.
                Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {}
                Err(error) => return Err(js_error(error)),
            }
        }
        Err(StoreError::JetStream("could not pin the channel's epoch".into()))
    }

    async fn write_meta(
        &self,
        subject: &str,
        position: &StreamPosition,
        expected: u64,
    ) -> Result<jetstream::publish::PublishAck, jetstream::context::PublishError> {
        let mut headers = position_headers(position);
        headers.insert(META, "1");
        headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE, expected.to_string().as_str());
        let ack = self.send(subject, headers, bytes::Bytes::new()).await?;
        let top = Top { seq: ack.sequence, position: position.clone(), last_version: LastVersion::default() };
        self.remember_top(subject, top);
        Ok(ack)
    }

    /// Drops the channel's publications, keeping its position (so offsets and epoch continue).
    pub async fn remove(&self, shape: HistoryShape, channel: &str) -> Result<(), StoreError> {
        self.ensure_connected()?;
        let subject = self.history_subject(shape, channel);
        // The meta message first, then everything before it: the channel never has no message,
        // so no node meanwhile takes it for a new channel and pins a new epoch. Re-published like
        // any stored message, it also tells every node's cache of recent publications to forget
        // them, so a publish racing in does not skip it: it goes after that publish.
        let mut written = false;
        for _ in 0..MAX_ATTEMPTS {
            let Some(top) = self.read_top(shape, &subject).await? else { return Ok(()) };
            match self.write_meta(&subject, &top.position, top.seq).await {
                Ok(_) => {
                    written = true;
                    break;
                }
                Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {}
                Err(error) => return Err(js_error(error)),
            }
        }
        if !written {
            return Err(StoreError::JetStream(format!(
                "gave up after {MAX_ATTEMPTS} publishes raced a history_remove"
            )));
        }
        self.stream(shape)?.purge().filter(subject.clone()).keep(1).await.map_err(js_error)?;
        self.tops.lock().map(|mut t| t.remove(&subject)).ok();
        Ok(())
    }

    /// The channel's position as stored (`None` for a channel never published to).
    pub async fn top(&self, shape: HistoryShape, channel: &str) -> Result<Option<StreamPosition>, StoreError> {
        self.ensure_connected()?;
        let subject = self.history_subject(shape, channel);
        Ok(self.read_top(shape, &subject).await?.map(|top| top.position))
    }

    /// How often channels with subscribers compare their position with the store.
    pub fn position_check(&self) -> Duration {
        self.position_check
    }

    /// Sets [`Self::position_check`] (`client.channel_position_check_delay`).
    pub fn with_position_check(mut self, every: Duration) -> Self {
        self.position_check = every.max(Duration::from_millis(100));
        self
    }

    async fn read_top(&self, shape: HistoryShape, subject: &str) -> Result<Option<Top>, StoreError> {
        Ok(self.read_last(shape, subject).await?.map(|last| Top::of(&last)))
    }

    /// The channel's last message (direct get by subject), remembered as its top.
    async fn read_last(&self, shape: HistoryShape, subject: &str) -> Result<Option<StoredMessage>, StoreError> {
        let stream = self.stream(shape)?;
        match stream.direct_get_last_for_subject(subject).await {
            Ok(message) => {
                let stored = StoredMessage::decode(message.sequence, Some(&message.headers), &message.payload)
                    .ok_or_else(|| StoreError::JetStream(format!("{subject} holds a message gyre did not write")))?;
                self.remember_top(subject, Top::of(&stored));
                Ok(Some(stored))
            }
            Err(error) if error.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(error) => Err(js_error(error)),
        }
    }

    async fn read_seq(&self, shape: HistoryShape, seq: u64) -> Result<StoredMessage, StoreError> {
        let message = self.stream(shape)?.direct_get(seq).await.map_err(js_error)?;
        StoredMessage::decode(message.sequence, Some(&message.headers), &message.payload)
            .ok_or_else(|| StoreError::JetStream("stored message without gyre headers".into()))
    }

    fn cached_top(&self, subject: &str) -> Option<Top> {
        self.tops.lock().ok()?.get(subject).cloned()
    }

    /// Remembers a channel's last message (after a publish or a read).
    fn remember_top(&self, subject: &str, top: Top) {
        if let Ok(mut tops) = self.tops.lock() {
            let newer = tops.get(subject).is_none_or(|known| known.seq < top.seq);
            if newer && tops.len() >= MAX_CACHED_TOPS && !tops.contains_key(subject) {
                // A hint cache: forgetting costs one direct get per channel, never correctness.
                tops.clear();
            }
            if newer {
                tops.insert(subject.to_owned(), top);
            }
        }
    }

    fn channel_lock(&self, subject: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut locks) = self.publishing.lock() else { return Arc::default() };
        locks.entry(subject.to_owned()).or_default().clone()
    }

    fn forget_lock(&self, subject: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        drop(lock);
        if let Ok(mut locks) = self.publishing.lock() {
            // Only the map holds it: nobody else is publishing to this channel now.
            if locks.get(subject).is_some_and(|l| Arc::strong_count(l) == 1) {
                locks.remove(subject);
            }
        }
    }
}

fn next_position(top: Option<&Top>) -> (StreamPosition, u64) {
    match top {
        Some(top) => (StreamPosition { offset: top.position.offset + 1, epoch: top.position.epoch.clone() }, top.seq),
        None => (StreamPosition { offset: 1, epoch: new_epoch() }, 0),
    }
}

fn position_headers(position: &StreamPosition) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(OFFSET, position.offset.to_string().as_str());
    headers.insert(EPOCH, &*position.epoch);
    headers.insert(TIME, unix_ms().to_string().as_str());
    headers
}

/// One subject token per shape: `<size>-<meta ttl seconds>`.
fn shape_token(shape: HistoryShape) -> String {
    format!("{}-{}", shape.size, shape.meta_ttl.as_secs())
}

fn stream_config(prefix: &str, shape: HistoryShape, replicas: usize) -> stream::Config {
    let token = shape_token(shape);
    let safe_prefix: String =
        prefix.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let meta_ttl = shape.meta_ttl.max(Duration::from_secs(1));
    stream::Config {
        name: format!("{safe_prefix}_history_{token}"),
        subjects: vec![format!("{prefix}.history.{token}.>")],
        max_messages_per_subject: shape.size as i64,
        discard: stream::DiscardPolicy::Old,
        max_age: meta_ttl,
        allow_direct: true,
        duplicate_window: IDEMPOTENCY_WINDOW.min(meta_ttl),
        storage: stream::StorageType::File,
        num_replicas: replicas.max(1),
        republish: Some(stream::Republish {
            source: format!("{prefix}.history.{token}.>"),
            destination: format!("{prefix}.live.{token}.>"),
            headers_only: false,
        }),
        ..Default::default()
    }
}

/// Publications of `messages` that a reader may still see: not meta, within `history_ttl`,
/// in `epoch`, up to `top`. Each comes with its remaining lifetime.
pub fn visible(
    messages: Vec<StoredMessage>,
    epoch: &str,
    top: u64,
    history_ttl: Duration,
) -> BTreeMap<u64, (Publication, Duration)> {
    let now = unix_ms();
    messages
        .into_iter()
        .filter(|m| &*m.position.epoch == epoch && m.position.offset <= top)
        .filter_map(|m| {
            let left = history_ttl.checked_sub(m.age(now)).filter(|left| !left.is_zero())?;
            Some((m.position.offset, (m.publication?, left)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_named_per_shape_and_republish_to_live_subjects() {
        let shape = HistoryShape { size: 10, meta_ttl: Duration::from_secs(3600) };
        let config = stream_config("my.app", shape, 3);
        assert_eq!(config.num_replicas, 3);
        assert_eq!(config.name, "my_app_history_10-3600");
        assert_eq!(config.subjects, vec!["my.app.history.10-3600.>".to_owned()]);
        assert_eq!(config.max_messages_per_subject, 10);
        let republish = config.republish.expect("republish");
        assert_eq!(republish.destination, "my.app.live.10-3600.>");
        assert!(config.duplicate_window <= config.max_age);
    }

    #[test]
    fn messages_round_trip_through_headers() {
        let position = StreamPosition { offset: 7, epoch: "abc".into() };
        let headers = position_headers(&position);
        let payload = br#"{"data":{"x":1},"tags":{"k":"v"}}"#;
        let stored = StoredMessage::decode(42, Some(&headers), payload).expect("decodes");
        assert_eq!(stored.seq, 42);
        assert_eq!(stored.position, position);
        let publication = stored.publication.expect("a publication");
        assert_eq!(publication.offset, 7);
        assert_eq!(publication.data.as_bytes(), br#"{"x":1}"#);
        let mut meta = position_headers(&position);
        meta.insert(META, "1");
        assert!(StoredMessage::decode(43, Some(&meta), b"").expect("decodes").publication.is_none());
        assert!(StoredMessage::decode(44, None, payload).is_none());
    }

    #[test]
    fn next_offset_continues_the_top_or_starts_an_epoch() {
        let position = StreamPosition { offset: 4, epoch: "e".into() };
        let top = Top { seq: 9, position, last_version: LastVersion::default() };
        let (next, expected) = next_position(Some(&top));
        assert_eq!((next.offset, &*next.epoch, expected), (5, "e", 9));
        let (first, expected) = next_position(None);
        assert_eq!((first.offset, expected), (1, 0));
        assert_eq!(first.epoch.len(), 8);
    }
}
