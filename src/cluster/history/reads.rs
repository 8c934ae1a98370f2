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
    /// `top` (the channel's last message, read here when `None`), and the messages read. An
    /// empty channel gets its epoch pinned, so every node reports the same position.
    pub async fn read_page(
        &self,
        shape: HistoryShape,
        channel: &str,
        query: &HistoryQuery,
        ttl: Duration,
        top: Option<StoredMessage>,
    ) -> Result<(Result<HistoryPage, HistoryError>, Span), StoreError> {
        let top = match top {
            Some(top) => Some(top),
            None => self.last_message(shape, channel).await?,
        };
        let Some(top) = top else {
            let position = self.position(shape, channel).await?;
            let none = std::iter::empty::<(Publication, Duration)>();
            return Ok((Stream::restore(position, none, shape.size, Instant::now()).read(query), Span::default()));
        };
        let position = top.position.clone();
        let goal = Goal::new(Wanted::for_query(query, &position), &position, ttl);
        let span = self.read_from(shape, &self.history_subject(shape, channel), top, &goal).await?;
        let items = visible(span.messages.clone(), &position.epoch, position.offset, ttl).into_values();
        Ok((Stream::restore(position, items, shape.size, Instant::now()).read(query), span))
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
        let plan = plan(goal.wanted, &top);
        let (Plan::Forward(lowest) | Plan::ToTop(lowest)) = plan else { return walk_back(stream, top, goal).await };
        let first = match first_message(stream, subject).await? {
            // Offsets of another epoch say nothing about where this one's are.
            Some(first) if first.position.epoch == top.position.epoch => first,
            _ => return walk_back(stream, top, goal).await,
        };
        let first_seq = first.seq;
        let start = match first.position.offset >= lowest {
            true => first,
            false => locate(stream, subject, first, &top, lowest).await?,
        };
        let reached_start = start.seq == first_seq;
        match plan {
            Plan::ToTop(_) => Ok(Span { messages: read_range(stream, subject, start, top).await?, reached_start }),
            _ => walk_forward(stream, subject, start, (top.seq, reached_start), goal).await,
        }
    }
}

/// How a read goes through the channel's messages.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Back from the top along predecessors (what is wanted sits right below the top).
    Back,
    /// Forward one by one from the message at this offset (or just below it).
    Forward(u64),
    /// Everything from the message at this offset (or just below it) up to the top, in
    /// segments read at once: a long read, where one round trip per message would add up.
    ToTop(u64),
}

/// Reads longer than this go in segments ([`read_range`]).
const LONG_READ: u64 = 16;

fn plan(wanted: Wanted, top: &StoredMessage) -> Plan {
    let top_offset = top.position.offset;
    let long = |n: u64| n > LONG_READ;
    match wanted {
        Wanted::Top => Plan::Back,
        Wanted::Oldest(count) if long((count as u64).min(top_offset)) => Plan::ToTop(0),
        Wanted::Oldest(_) => Plan::Forward(0),
        Wanted::After { offset, count } => {
            let (above, count) = (top_offset.saturating_sub(offset), count as u64);
            match above <= count {
                true if long(above) => Plan::ToTop(offset + 1),
                true => Plan::Back,
                false if long(count) => Plan::ToTop(offset + 1),
                false => Plan::Forward(offset + 1),
            }
        }
        Wanted::Before { offset, count } => {
            let above = top_offset.saturating_add(1).saturating_sub(offset);
            let below = offset.min(count as u64);
            match () {
                _ if long(below) => Plan::ToTop(offset - below),
                _ if above > below => Plan::Forward(offset - below),
                _ => Plan::Back,
            }
        }
    }
}

/// Messages a segment of [`read_range`] covers, about.
const SEGMENT: u64 = 8;
/// Segments of one [`read_range`] at most (requests in flight at once).
const MAX_SEGMENTS: u64 = 16;

/// Every message of the channel from `low` to `high`, in order. The range is cut into
/// segments at evenly spaced stream sequences; a probe at each cut finds the segment's first
/// message (next by subject), then every segment walks forward to the next one's start, all
/// at once.
async fn read_range(
    stream: &stream::Stream,
    subject: &str,
    low: StoredMessage,
    high: StoredMessage,
) -> Result<Vec<StoredMessage>, StoreError> {
    if low.seq >= high.seq {
        return Ok(vec![high]);
    }
    let segments = (high.position.offset.saturating_sub(low.position.offset) / SEGMENT).clamp(1, MAX_SEGMENTS);
    let (first_seq, step) = (low.seq, (high.seq - low.seq) / segments);
    let probes = (1..segments).map(|i| next_message(stream, subject, first_seq + i * step));
    let mut starts = vec![low];
    for probe in futures_util::future::join_all(probes).await {
        starts.extend(probe?.filter(|m| m.seq < high.seq));
    }
    starts.sort_by_key(|m| m.seq);
    starts.dedup_by_key(|m| m.seq);
    let ends: Vec<u64> = starts.iter().skip(1).map(|m| m.seq).chain([high.seq]).collect();
    let walks = starts.into_iter().zip(ends).map(|(start, end)| walk_segment(stream, subject, start, end));
    let mut read = Vec::new();
    for segment in futures_util::future::join_all(walks).await {
        read.extend(segment?);
    }
    read.push(high);
    Ok(read)
}

/// `start` and the channel's messages after it, before sequence `end`.
async fn walk_segment(
    stream: &stream::Stream,
    subject: &str,
    start: StoredMessage,
    end: u64,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut read = vec![start];
    while let Some(last) = read.last().filter(|m| m.seq + 1 < end) {
        match next_message(stream, subject, last.seq + 1).await? {
            Some(message) if message.seq < end => read.push(message),
            _ => break,
        }
    }
    Ok(read)
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
    fn reads_near_the_top_go_backward_long_ones_in_segments_and_the_others_forward() {
        let top = top(100);
        assert_eq!(plan(Wanted::Top, &top), Plan::Back);
        assert_eq!(plan(Wanted::Before { offset: 101, count: 1 }, &top), Plan::Back);
        assert_eq!(plan(Wanted::After { offset: 95, count: 10 }, &top), Plan::Back);
        assert_eq!(plan(Wanted::After { offset: 50, count: usize::MAX }, &top), Plan::ToTop(51));
        assert_eq!(plan(Wanted::Oldest(1), &top), Plan::Forward(0));
        assert_eq!(plan(Wanted::Oldest(usize::MAX), &top), Plan::ToTop(0));
        assert_eq!(plan(Wanted::After { offset: 50, count: 10 }, &top), Plan::Forward(51));
        assert_eq!(plan(Wanted::Before { offset: 50, count: 10 }, &top), Plan::Forward(40));
        assert_eq!(plan(Wanted::Before { offset: 50, count: usize::MAX }, &top), Plan::ToTop(0));
        assert_eq!(plan(Wanted::Before { offset: 101, count: usize::MAX }, &top), Plan::ToTop(0));
    }
}
