//! What the registry keeps of channels that have no actor on this node.
//!
//! A channel actor lives while the channel has subscribers here (or publish results to
//! remember). Without them, in the memory engine, the channel's history is parked here as plain
//! data until it expires, and then only its position (epoch and offset) is kept for
//! `channel.history_meta_ttl`, so a channel re-created later continues the same stream. A
//! broadcast to a million channels nobody watches leaves a million of these, so they are kept
//! small: a parked stream is its publications and ~150 bytes, a position ~50 bytes plus the
//! channel's name, and neither has a task, a mailbox or a timer of its own.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::history::{HistoryError, HistoryPage, HistoryQuery, LastVersion, Stream};
use crate::domain::{ChannelName, Publication, StreamPosition};

/// The history shape of a channel's namespace (its `history_size` and `history_ttl`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub size: usize,
    pub ttl: Duration,
}

/// Parked streams and kept positions, by channel.
pub(super) struct Parked {
    entries: HashMap<ChannelName, Kept>,
    /// When each parked stream's oldest publication expires: one entry per parked stream,
    /// matched by [`ParkedStream::check_at`] (entries that no longer match are skipped).
    expiries: BinaryHeap<Reverse<(Instant, ChannelName)>>,
    /// Kept positions oldest first, with their `until` (entries that no longer match are
    /// skipped): they are forgotten, or evicted for room, in this order.
    positions: VecDeque<(ChannelName, u32)>,
    meta_ttl: Duration,
    /// `Position::until` counts seconds from here.
    started: Instant,
}

enum Kept {
    Stream(Box<ParkedStream>),
    Position(Position),
}

struct ParkedStream {
    stream: Stream,
    check_at: Instant,
}

/// A position kept after the history expired.
struct Position {
    offset: u64,
    epoch: Epoch,
    /// Present when the last publication was versioned (rare).
    last_version: Option<Box<LastVersion>>,
    /// Forgotten this many seconds after [`Parked::started`].
    until: u32,
}

/// An epoch without a heap allocation when it is the memory engine's usual 8 bytes.
enum Epoch {
    Eight([u8; 8]),
    Other(Arc<str>),
}

impl Epoch {
    fn new(epoch: &Arc<str>) -> Self {
        match <[u8; 8]>::try_from(epoch.as_bytes()) {
            Ok(bytes) => Self::Eight(bytes),
            Err(_) => Self::Other(epoch.clone()),
        }
    }

    fn to_arc(&self) -> Arc<str> {
        match self {
            Self::Eight(bytes) => String::from_utf8_lossy(bytes).into(),
            Self::Other(epoch) => epoch.clone(),
        }
    }
}

/// What a channel actor starts from.
pub(super) enum Taken {
    Stream(Stream),
    Position(StreamPosition, LastVersion),
}

impl Parked {
    pub fn new(meta_ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            expiries: BinaryHeap::new(),
            positions: VecDeque::new(),
            meta_ttl,
            started: Instant::now(),
        }
    }

    /// Channels with something kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether anything is kept of `name`.
    pub fn contains(&self, name: &ChannelName) -> bool {
        self.entries.contains_key(name)
    }

    /// Removes what is kept of `name`, for its new actor.
    pub fn take(&mut self, name: &ChannelName) -> Option<Taken> {
        Some(match self.entries.remove(name)? {
            Kept::Stream(parked) => Taken::Stream(parked.stream),
            Kept::Position(position) => {
                let (position, last_version) = unpack(&position);
                Taken::Position(position, last_version)
            }
        })
    }

    /// Keeps a channel's stream once its actor is gone: the publications while any is left,
    /// else the position (a stream that never had a publication is not kept).
    pub fn park(&mut self, name: ChannelName, mut stream: Stream, now: Instant) {
        stream.expire(now);
        match stream.next_expiry() {
            Some(check_at) => {
                self.expiries.push(Reverse((check_at, name.clone())));
                self.entries.insert(name, Kept::Stream(Box::new(ParkedStream { stream, check_at })));
            }
            None => self.keep_position(name, &stream, now),
        }
    }

    fn keep_position(&mut self, name: ChannelName, stream: &Stream, now: Instant) {
        let StreamPosition { offset, epoch } = stream.position();
        if offset == 0 {
            self.entries.remove(&name);
            return;
        }
        let last_version = stream.last_version();
        let until = self.seconds_at(now + self.meta_ttl);
        let position = Position {
            offset,
            epoch: Epoch::new(&epoch),
            last_version: (*last_version != LastVersion::default()).then(|| Box::new(last_version.clone())),
            until,
        };
        self.positions.push_back((name.clone(), until));
        self.entries.insert(name, Kept::Position(position));
    }

    /// Appends to the channel's parked stream (continuing a kept position, or a new stream).
    /// A publication with an outdated version is dropped; the answer is then the current
    /// position, as a channel actor answers.
    pub fn publish(
        &mut self,
        name: &ChannelName,
        shape: Shape,
        publication: Publication,
        now: Instant,
    ) -> StreamPosition {
        let parked = self.parked_stream(name, shape, now);
        if parked.stream.is_outdated(&publication) {
            return parked.stream.position();
        }
        parked.stream.expire(now);
        parked.stream.append(publication, now);
        let position = parked.stream.position();
        if parked.check_at <= now {
            // It was empty (a kept position or a new stream): arm its expiry.
            if let Some(check_at) = parked.stream.next_expiry() {
                parked.check_at = check_at;
                self.expiries.push(Reverse((check_at, name.clone())));
            }
        }
        position
    }

    /// Reads the history of a channel without an actor.
    pub fn read(
        &mut self,
        name: &ChannelName,
        shape: Shape,
        query: &HistoryQuery,
        now: Instant,
    ) -> Result<HistoryPage, HistoryError> {
        match self.entries.get_mut(name) {
            Some(Kept::Stream(parked)) => {
                parked.stream.expire(now);
                parked.stream.read(query)
            }
            Some(Kept::Position(position)) => {
                let (position, last_version) = unpack(position);
                Stream::new(Some(position), shape.size, shape.ttl).with_last_version(last_version).read(query)
            }
            None => Stream::new(None, shape.size, shape.ttl).read(query),
        }
    }

    /// `history_remove` of a channel without an actor: its publications go, its position stays.
    pub fn remove_history(&mut self, name: &ChannelName, now: Instant) {
        if let Some(Kept::Stream(parked)) = self.entries.remove(name) {
            self.keep_position(name.clone(), &parked.stream, now);
        }
    }

    /// Drops the publications that expired by `now`; a stream left empty becomes a position.
    pub fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, name))) = self.expiries.pop() else { break };
            let Some(Kept::Stream(parked)) = self.entries.get_mut(&name) else { continue };
            if parked.check_at != at {
                continue;
            }
            parked.stream.expire(now);
            match parked.stream.next_expiry() {
                Some(next) => {
                    parked.check_at = next;
                    self.expiries.push(Reverse((next, name)));
                }
                None => {
                    if let Some(Kept::Stream(parked)) = self.entries.remove(&name) {
                        self.keep_position(name, &parked.stream, now);
                    }
                }
            }
        }
    }

    /// Forgets positions kept longer than `history_meta_ttl`.
    pub fn forget_old_positions(&mut self, now: Instant) {
        let now = self.seconds_at(now);
        while self.positions.front().is_some_and(|(_, until)| *until <= now) {
            self.forget_oldest_position();
        }
    }

    /// Forgets the oldest kept position (to make room for a new channel); false if none is kept.
    pub fn evict_oldest_position(&mut self) -> bool {
        while !self.positions.is_empty() {
            if self.forget_oldest_position() {
                return true;
            }
        }
        false
    }

    /// Pops the oldest queued position and forgets it if it is still kept as queued.
    fn forget_oldest_position(&mut self) -> bool {
        let Some((name, until)) = self.positions.pop_front() else { return false };
        let current = matches!(self.entries.get(&name), Some(Kept::Position(p)) if p.until == until);
        if current {
            self.entries.remove(&name);
        }
        current
    }

    /// Channels with something kept (parked streams, kept positions).
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        let streams = self.entries.values().filter(|k| matches!(k, Kept::Stream(_))).count();
        (streams, self.entries.len() - streams)
    }

    fn parked_stream(&mut self, name: &ChannelName, shape: Shape, now: Instant) -> &mut ParkedStream {
        let kept =
            self.entries.entry(name.clone()).or_insert_with(|| new_parked(None, LastVersion::default(), shape, now));
        if let Kept::Position(position) = kept {
            let (position, last_version) = unpack(position);
            *kept = new_parked(Some(position), last_version, shape, now);
        }
        match kept {
            Kept::Stream(parked) => parked,
            Kept::Position(_) => unreachable!("a kept position was just replaced by a stream"),
        }
    }

    fn seconds_at(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.started).as_secs()).unwrap_or(u32::MAX)
    }
}

fn unpack(position: &Position) -> (StreamPosition, LastVersion) {
    let stream_position = StreamPosition { offset: position.offset, epoch: position.epoch.to_arc() };
    (stream_position, position.last_version.as_deref().cloned().unwrap_or_default())
}

/// A parked stream with nothing in it yet; `check_at` in the past marks "no expiry armed".
fn new_parked(position: Option<StreamPosition>, last_version: LastVersion, shape: Shape, now: Instant) -> Kept {
    let stream = Stream::new(position, shape.size, shape.ttl).with_last_version(last_version);
    Kept::Stream(Box::new(ParkedStream { stream, check_at: now }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Payload;

    const SHAPE: Shape = Shape { size: 10, ttl: Duration::from_secs(5) };

    fn name(n: &str) -> ChannelName {
        ChannelName::new_unchecked(n)
    }

    fn publication(text: &str) -> Publication {
        Publication { data: Payload::from(text), ..Default::default() }
    }

    fn all() -> HistoryQuery {
        HistoryQuery { limit: None, ..Default::default() }
    }

    #[test]
    fn a_parked_stream_keeps_offsets_and_epoch_and_expires_into_a_position() {
        let mut parked = Parked::new(Duration::from_secs(3600));
        let now = Instant::now();
        let first = parked.publish(&name("a"), SHAPE, publication("1"), now);
        let second = parked.publish(&name("a"), SHAPE, publication("2"), now + Duration::from_secs(1));
        assert_eq!((first.offset, second.offset), (1, 2));
        assert_eq!(first.epoch, second.epoch);
        let page = parked.read(&name("a"), SHAPE, &all(), now).unwrap();
        assert_eq!(page.publications.len(), 2);
        assert_eq!(parked.counts(), (1, 0));

        parked.expire(now + Duration::from_secs(5));
        let page = parked.read(&name("a"), SHAPE, &all(), now + Duration::from_secs(5)).unwrap();
        assert_eq!(page.publications.len(), 1, "the first publication expired, the second is left");
        parked.expire(now + Duration::from_secs(6));
        assert_eq!(parked.counts(), (0, 1), "an empty stream becomes a position");

        let page = parked.read(&name("a"), SHAPE, &all(), now + Duration::from_secs(6)).unwrap();
        assert_eq!((page.publications.len(), page.position), (0, second.clone()));
        let third = parked.publish(&name("a"), SHAPE, publication("3"), now + Duration::from_secs(7));
        assert_eq!((third.offset, third.epoch), (3, second.epoch));
    }

    #[test]
    fn positions_are_forgotten_after_the_meta_ttl() {
        let mut parked = Parked::new(Duration::from_secs(60));
        let now = Instant::now();
        parked.publish(&name("a"), SHAPE, publication("1"), now);
        parked.expire(now + Duration::from_secs(10));
        parked.forget_old_positions(now + Duration::from_secs(30));
        assert_eq!(parked.counts(), (0, 1));
        parked.forget_old_positions(now + Duration::from_secs(72));
        assert_eq!(parked.counts(), (0, 0));
    }

    #[test]
    fn take_hands_the_stream_or_position_to_an_actor_and_park_takes_it_back() {
        let mut parked = Parked::new(Duration::from_secs(3600));
        let now = Instant::now();
        let top = parked.publish(&name("a"), SHAPE, publication("1"), now);
        let Some(Taken::Stream(mut stream)) = parked.take(&name("a")) else { panic!("a parked stream") };
        assert_eq!(parked.counts(), (0, 0));
        stream.append(publication("2"), now);
        parked.park(name("a"), stream, now);
        let page = parked.read(&name("a"), SHAPE, &all(), now).unwrap();
        assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2]);

        parked.remove_history(&name("a"), now);
        assert_eq!(parked.counts(), (0, 1));
        let Some(Taken::Position(position, _)) = parked.take(&name("a")) else { panic!("a kept position") };
        assert_eq!((position.offset, position.epoch), (2, top.epoch));
    }

    #[test]
    fn an_outdated_version_is_dropped_and_versions_survive_as_a_position() {
        let mut parked = Parked::new(Duration::from_secs(3600));
        let now = Instant::now();
        let versioned = |v| Publication { version: v, ..publication("v") };
        parked.publish(&name("a"), SHAPE, versioned(5), now);
        let answer = parked.publish(&name("a"), SHAPE, versioned(4), now);
        assert_eq!(answer.offset, 1, "version 4 after 5 is dropped");
        parked.expire(now + Duration::from_secs(6));
        assert_eq!(parked.counts(), (0, 1));
        assert_eq!(parked.publish(&name("a"), SHAPE, versioned(5), now).offset, 1, "still outdated");
        assert_eq!(parked.publish(&name("a"), SHAPE, versioned(6), now).offset, 2);
    }

    #[test]
    fn the_oldest_position_is_evicted_first_and_streams_never_are() {
        let mut parked = Parked::new(Duration::from_secs(3600));
        let now = Instant::now();
        for (n, channel) in ["a", "b", "c"].iter().enumerate() {
            let at = now + Duration::from_secs(n as u64 * 2);
            parked.publish(&name(channel), SHAPE, publication("1"), at);
            parked.expire(at + Duration::from_secs(6));
        }
        parked.publish(&name("d"), SHAPE, publication("1"), now + Duration::from_secs(20));
        assert_eq!(parked.counts(), (1, 3));
        // "a" comes back as a stream and is kept again as a position later: its first queue
        // entry no longer matches.
        parked.publish(&name("a"), SHAPE, publication("2"), now + Duration::from_secs(20));
        parked.expire(now + Duration::from_secs(30));
        assert_eq!(parked.counts(), (0, 4));
        assert!(parked.evict_oldest_position());
        assert!(!parked.contains(&name("b")), "b is the oldest now");
        assert!(parked.evict_oldest_position());
        assert!(!parked.contains(&name("c")));
        assert!(parked.contains(&name("a")) && parked.contains(&name("d")));
        assert!(parked.evict_oldest_position() && parked.evict_oldest_position());
        assert!(!parked.evict_oldest_position(), "nothing left to evict");
        assert_eq!(parked.len(), 0);
    }

    #[test]
    fn a_stream_that_never_had_a_publication_is_not_kept() {
        let mut parked = Parked::new(Duration::from_secs(3600));
        parked.park(name("a"), Stream::new(None, 10, Duration::from_secs(5)), Instant::now());
        assert_eq!(parked.counts(), (0, 0));
    }

    #[test]
    fn an_expiry_entry_of_a_stream_taken_and_parked_again_is_skipped() {
        let mut parked = Parked::new(Duration::from_secs(3600));
        let now = Instant::now();
        parked.publish(&name("a"), SHAPE, publication("1"), now);
        let Some(Taken::Stream(mut stream)) = parked.take(&name("a")) else { panic!("a parked stream") };
        stream.append(publication("2"), now + Duration::from_secs(3));
        parked.park(name("a"), stream, now + Duration::from_secs(3));
        parked.expire(now + Duration::from_secs(5));
        let page = parked.read(&name("a"), SHAPE, &all(), now + Duration::from_secs(5)).unwrap();
        assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![2]);
        parked.expire(now + Duration::from_secs(8));
        assert_eq!(parked.counts(), (0, 1));
    }
}
