//! Bounded reads of one channel's history: direct gets of the messages a read needs, no
//! consumer. Many channels share a stream, so offset N is not sequence N; a read starts from
//! the channel's last message (direct get by subject) and walks back along each message's
//! predecessor (the sequence its write expected to follow), or from the channel's first
//! retained message forward (next by subject), whichever reaches the wanted offsets sooner.
//! A walk ends where the channel's retained history does: a missing predecessor (trimmed or
//! purged), a meta message (`history_remove` or a pinned epoch), another epoch, or none.

use std::time::{Duration, Instant};

use async_nats::jetstream::stream;

use super::{js_error, unix_ms, visible, HistoryStore, StoreError, StoredMessage};
use crate::channel::history::{HistoryError, HistoryPage, HistoryQuery, Stream, Wanted};
use crate::channel::HistoryShape;
use crate::domain::{Publication, StreamPosition};

/// Messages of one channel as read: contiguous by stream order, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Span {
    /// Oldest first; the last one is the channel's top when the read started from it.
    pub messages: Vec<StoredMessage>,
    /// Nothing older than the first message is retained: the span starts the channel's history.
    pub reached_start: bool,
}

/// Whether a walk has what `wanted` needs, judged on what it read so far.
struct Goal {
    wanted: Wanted,
    epoch: std::sync::Arc<str>,
    ttl: Duration,
    now_ms: u64,
}

impl Goal {
    fn new(wanted: Wanted, top: &StreamPosition, ttl: Duration) -> Self {
        Self { wanted, epoch: top.epoch.clone(), ttl, now_ms: unix_ms() }
    }

    fn visible(&self, message: &StoredMessage) -> bool {
        message.publication.is_some() && message.position.epoch == self.epoch && message.age(self.now_ms) < self.ttl
    }

    /// Walking back (newest first in `read`).
    fn met_backward(&self, read: &[StoredMessage]) -> bool {
        let Some(lowest) = read.last() else { return false };
        match self.wanted {
            Wanted::Top => true,
            Wanted::Oldest(_) => false,
            Wanted::After { offset, .. } => lowest.position.offset <= offset.saturating_add(1),
            Wanted::Before { offset, count } => {
                read.iter().filter(|m| m.position.offset < offset && self.visible(m)).count() >= count
            }
        }
    }

    /// Walking forward (oldest first in `read`).
    fn met_forward(&self, read: &[StoredMessage]) -> bool {
        let after = match self.wanted {
            Wanted::Oldest(count) => (0, count),
            Wanted::After { offset, count } => (offset, count),
            Wanted::Before { offset, .. } => return read.last().is_some_and(|m| m.position.offset + 1 >= offset),
            Wanted::Top => return true,
        };
        let (after, count) = after;
        read.iter().filter(|m| m.position.offset > after && self.visible(m)).count() >= count
    }
}

impl HistoryStore {
    /// The messages of `channel` that `wanted` (decided on the stream's top position) needs,
    /// and the top itself. An empty span: the channel has no message.
    pub async fn read_span(
        &self,
        shape: HistoryShape,
        channel: &str,
        wanted: impl FnOnce(&StreamPosition) -> Wanted,
        ttl: Duration,
    ) -> Result<Span, StoreError> {
        self.ensure_connected()?;
        let subject = self.history_subject(shape, channel);
        let Some(top) = self.read_last(shape, &subject).await? else { return Ok(Span::default()) };
        let goal = Goal::new(wanted(&top.position), &top.position, ttl);
        self.read_from(shape, &subject, top, &goal).await
    }

    /// A page of history with the memory engine's rules, reading what the page needs from
    /// `top` (the channel's last message, read here when `None`). An empty channel gets its
    /// epoch pinned, so every node reports the same position.
    pub async fn read_page(
        &self,
        shape: HistoryShape,
        channel: &str,
        query: &HistoryQuery,
        ttl: Duration,
        top: Option<StoredMessage>,
    ) -> Result<Result<HistoryPage, HistoryError>, StoreError> {
        let top = match top {
            Some(top) => Some(top),
            None => self.last_message(shape, channel).await?,
        };
        let Some(top) = top else {
            let position = self.position(shape, channel).await?;
            let none = std::iter::empty::<(Publication, Duration)>();
            return Ok(Stream::restore(position, none, shape.size, Instant::now()).read(query));
        };
        let position = top.position.clone();
        let goal = Goal::new(Wanted::for_query(query, &position), &position, ttl);
        let span = self.read_from(shape, &self.history_subject(shape, channel), top, &goal).await?;
        let items = visible(span.messages, &position.epoch, position.offset, ttl).into_values();
        Ok(Stream::restore(position, items, shape.size, Instant::now()).read(query))
    }

    /// The last message of `channel`, if any (one direct get).
    pub async fn last_message(&self, shape: HistoryShape, channel: &str) -> Result<Option<StoredMessage>, StoreError> {
        self.ensure_connected()?;
        self.read_last(shape, &self.history_subject(shape, channel)).await
    }

    async fn read_from(
        &self,
        shape: HistoryShape,
        subject: &str,
        top: StoredMessage,
        goal: &Goal,
    ) -> Result<Span, StoreError> {
        let stream = self.stream(shape)?;
        let Some(lowest) = forward_from(goal.wanted, &top) else { return walk_back(stream, top, goal).await };
        let first = match first_message(stream, subject).await? {
            // Offsets of another epoch say nothing about where this one's are.
            Some(first) if first.position.epoch == top.position.epoch => first,
            _ => return walk_back(stream, top, goal).await,
        };
        if first.position.offset >= lowest {
            return walk_forward(stream, subject, first, (top.seq, true), goal).await;
        }
        let start = locate(stream, subject, first, &top, lowest).await?;
        walk_forward(stream, subject, start, (top.seq, false), goal).await
    }
}

/// Where a forward read starts (the lowest offset it needs), or `None` when the read is as
/// short from the top backward (what it wants sits right below the top).
fn forward_from(wanted: Wanted, top: &StoredMessage) -> Option<u64> {
    let above = |offset: u64| top.position.offset.saturating_add(1).saturating_sub(offset);
    match wanted {
        Wanted::Top => None,
        Wanted::Oldest(_) => Some(0),
        Wanted::After { offset, count } => (above(offset + 1) > count as u64).then_some(offset + 1),
        Wanted::Before { offset, count } => {
            let below = offset.min(count as u64);
            (above(offset) > below).then(|| offset - below)
        }
    }
}

/// How many probes [`locate`] makes before it walks.
const LOCATE_PROBES: usize = 6;

/// The message to walk forward from to reach offset `target`, between `low` (below it) and
/// `high` (at or above it). Offsets grow with stream sequences, and a channel's messages are
/// usually spread evenly over its stream: each probe guesses the sequence by interpolation and
/// asks for the channel's next message from there, narrowing the bracket.
async fn locate(
    stream: &stream::Stream,
    subject: &str,
    mut low: StoredMessage,
    high: &StoredMessage,
    target: u64,
) -> Result<StoredMessage, StoreError> {
    let (mut high_seq, mut high_offset) = (high.seq, high.position.offset);
    for _ in 0..LOCATE_PROBES {
        let (low_seq, low_offset) = (low.seq, low.position.offset);
        if low_offset + 1 >= target || high_seq <= low_seq + 1 || high_offset <= low_offset {
            break;
        }
        let share =
            u128::from(target - low_offset) * u128::from(high_seq - low_seq) / u128::from(high_offset - low_offset);
        let guess = (low_seq + u64::try_from(share).unwrap_or(u64::MAX)).clamp(low_seq + 1, high_seq);
        let Some(probe) = next_message(stream, subject, guess).await? else { break };
        if probe.position.epoch != low.position.epoch || probe.seq > high_seq {
            break;
        }
        match probe.position.offset {
            offset if offset == target => return Ok(probe),
            offset if offset < target => low = probe,
            offset => (high_seq, high_offset) = (probe.seq, offset),
        }
    }
    Ok(low)
}

/// From the top back along predecessors until `goal` is met or the history ends.
async fn walk_back(stream: &stream::Stream, top: StoredMessage, goal: &Goal) -> Result<Span, StoreError> {
    let mut read = vec![top];
    let reached_start = loop {
        let Some(oldest) = read.last() else { break true };
        if oldest.publication.is_none() || oldest.prev == 0 {
            break true;
        }
        if goal.met_backward(&read) {
            break false;
        }
        match get(stream, oldest.prev).await? {
            Some(message) if message.position.epoch == goal.epoch => read.push(message),
            _ => break true,
        }
    };
    read.reverse();
    Ok(Span { messages: read, reached_start })
}

/// From `start` forward until `goal` is met or the top is reached.
async fn walk_forward(
    stream: &stream::Stream,
    subject: &str,
    start: StoredMessage,
    (top_seq, from_first): (u64, bool),
    goal: &Goal,
) -> Result<Span, StoreError> {
    let mut read = vec![start];
    while let Some(newest) = read.last().filter(|m| m.seq < top_seq) {
        if goal.met_forward(&read) {
            break;
        }
        match next_message(stream, subject, newest.seq + 1).await? {
            Some(message) if message.seq <= top_seq => read.push(message),
            _ => break,
        }
    }
    Ok(Span { messages: read, reached_start: from_first })
}

async fn get(stream: &stream::Stream, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
    found(stream.direct_get(seq).await)
}

async fn first_message(stream: &stream::Stream, subject: &str) -> Result<Option<StoredMessage>, StoreError> {
    found(stream.direct_get_first_for_subject(subject).await)
}

async fn next_message(stream: &stream::Stream, subject: &str, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
    found(stream.direct_get_next_for_subject(subject, Some(seq)).await)
}

/// A direct get's message, decoded; `None` when there is none (or it is not gyre's).
fn found(
    result: Result<async_nats::jetstream::message::StreamMessage, stream::DirectGetError>,
) -> Result<Option<StoredMessage>, StoreError> {
    match result {
        Ok(message) => Ok(StoredMessage::decode(message.sequence, Some(&message.headers), &message.payload)),
        Err(error) if error.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
        Err(error) => Err(js_error(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(offset: u64) -> StoredMessage {
        let position = StreamPosition { offset, epoch: "e".into() };
        StoredMessage { seq: offset * 3, position, publication: None, time_ms: 0, prev: 0 }
    }

    #[test]
    fn reads_near_the_top_go_backward_and_the_others_forward_from_where_they_start() {
        let top = top(100);
        assert_eq!(forward_from(Wanted::Top, &top), None);
        assert_eq!(forward_from(Wanted::Before { offset: 101, count: 1 }, &top), None);
        assert_eq!(forward_from(Wanted::After { offset: 95, count: 10 }, &top), None);
        assert_eq!(forward_from(Wanted::After { offset: 50, count: usize::MAX }, &top), None);
        assert_eq!(forward_from(Wanted::Oldest(1), &top), Some(0));
        assert_eq!(forward_from(Wanted::After { offset: 50, count: 10 }, &top), Some(51));
        assert_eq!(forward_from(Wanted::Before { offset: 50, count: 10 }, &top), Some(40));
        assert_eq!(forward_from(Wanted::Before { offset: 50, count: usize::MAX }, &top), Some(0));
    }
}
