//! The messages a store-backed channel (cluster mode with JetStream) delivered lately: a cache
//! on this node that answers recoveries and history reads without reading JetStream.
//!
//! The channel feeds it every stored message it delivers, in offset order, so it holds the
//! channel's messages after offset `from` up to its top, exactly as the store does: at most
//! `history_size` of them (the store keeps that many per channel), meta messages included (a
//! meta message is `history_remove` or a new epoch: everything before it is gone). When the
//! cache is *complete*, nothing at or before `from` is retained in the store either, and it
//! answers any read; otherwise only reads that stay above `from`. Pure data structure; the
//! channel actor owns one and drops it with itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::history::Wanted;
use crate::cluster::history::{Span, StoredMessage};
use crate::domain::{Publication, StreamPosition};

#[derive(Debug, Clone)]
struct Entry {
    offset: u64,
    seq: u64,
    /// `None` for a meta message.
    publication: Option<Arc<Publication>>,
    time_ms: u64,
}

/// Recent messages of one channel.
#[derive(Debug)]
pub struct Recent {
    epoch: Arc<str>,
    /// Every message after this offset up to `top` is in `entries` (expired ones aside).
    from: u64,
    top: u64,
    /// Stream sequence of the newest message seen.
    last_seq: u64,
    /// Nothing at or before `from` is retained in the store.
    complete: bool,
    entries: VecDeque<Entry>,
    size: usize,
    /// Changes whenever the cache starts over, so a store read started before does not refill it.
    generation: u64,
}

impl Recent {
    /// An empty cache for a channel keeping `size` publications; it knows nothing yet.
    pub fn new(size: usize) -> Self {
        Self {
            epoch: "".into(),
            from: 0,
            top: 0,
            last_seq: 0,
            complete: false,
            entries: VecDeque::new(),
            size,
            generation: 0,
        }
    }

    /// Starts over at `position`, knowing nothing before it.
    pub fn restart_at(&mut self, position: &StreamPosition) {
        self.start_over(position.epoch.clone(), position.offset, false);
    }

    fn start_over(&mut self, epoch: Arc<str>, from: u64, complete: bool) {
        self.epoch = epoch;
        self.from = from;
        self.top = from;
        self.complete = complete;
        self.entries.clear();
        self.generation += 1;
    }

    /// Which incarnation of the cache this is (see [`Self::backfill`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes a stored message the channel delivered (or a meta message at its position).
    pub fn record(&mut self, message: &StoredMessage) {
        if message.seq <= self.last_seq {
            return;
        }
        self.last_seq = message.seq;
        let (offset, epoch) = (message.position.offset, &message.position.epoch);
        match &message.publication {
            // history_remove or a pinned epoch: nothing before it is retained.
            None => self.start_over(epoch.clone(), offset, true),
            Some(_) if *epoch == self.epoch && offset == self.top + 1 => {}
            // The first of an epoch has nothing before it.
            Some(_) => self.start_over(epoch.clone(), offset.saturating_sub(1), offset == 1),
        }
        self.top = offset;
        self.entries.push_back(entry(message));
        while self.entries.len() > self.size {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(oldest) = self.entries.pop_front() {
            // The store keeps as many per channel: it dropped this one too.
            self.from = oldest.offset;
            self.complete = true;
        }
    }

    /// Drops publications older than `ttl` from the front (they are no longer visible anyway).
    pub fn expire(&mut self, ttl: Duration, now_ms: u64) {
        while self.entries.front().is_some_and(|e| age(e.time_ms, now_ms) >= ttl) {
            if let Some(oldest) = self.entries.pop_front() {
                self.from = oldest.offset;
            }
        }
    }

    /// Stream sequence of the newest message seen.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Whether the cache is at `position` (and, when given, at stream sequence `seq`).
    pub fn is_at(&self, position: &StreamPosition, seq: Option<u64>) -> bool {
        self.epoch == position.epoch && self.top == position.offset && seq.is_none_or(|seq| seq == self.last_seq)
    }

    /// Whether the cache holds everything a read of `wanted` needs.
    pub fn covers(&self, wanted: Wanted, ttl: Duration, now_ms: u64) -> bool {
        match wanted {
            Wanted::Top => true,
            _ if self.complete => true,
            Wanted::Oldest(_) => false,
            Wanted::After { offset, .. } => offset >= self.from,
            Wanted::Before { offset, count } => {
                self.visible(ttl, now_ms).filter(|(p, _)| p.offset < offset).count() >= count
            }
        }
    }

    /// Visible publications (within `ttl`), oldest first, with their remaining lifetime.
    pub fn visible(&self, ttl: Duration, now_ms: u64) -> impl Iterator<Item = (Arc<Publication>, Duration)> + '_ {
        self.entries.iter().filter_map(move |e| {
            let left = ttl.checked_sub(age(e.time_ms, now_ms)).filter(|left| !left.is_zero())?;
            Some((e.publication.clone()?, left))
        })
    }

    /// Prepends what a store read found before the cache's first message, if the cache has not
    /// started over since the read began (`generation`).
    pub fn backfill(&mut self, span: &Span, generation: u64) {
        if generation != self.generation || self.complete {
            return;
        }
        let front = self.entries.front().map(|e| e.seq);
        let before_front = |m: &&StoredMessage| match front {
            Some(seq) => m.seq < seq,
            None => m.position.offset <= self.from,
        };
        let older: Vec<&StoredMessage> =
            span.messages.iter().rev().filter(|m| m.position.epoch == self.epoch).filter(before_front).collect();
        for message in older {
            if self.entries.len() >= self.size {
                self.complete = true;
                return;
            }
            let meta = message.publication.is_none();
            if !meta && message.position.offset != self.from {
                return;
            }
            if front.is_none() {
                // The cache had nothing: the first message it takes is the one at its top.
                self.last_seq = self.last_seq.max(message.seq);
            }
            self.entries.push_front(entry(message));
            if meta {
                // Everything before a meta message is gone.
                self.complete = true;
                return;
            }
            self.from = self.from.saturating_sub(1);
        }
        // Nothing older than the read's first message is retained, and the cache now reaches it.
        if span.reached_start && !span.messages.is_empty() {
            self.complete = true;
        }
    }
}

fn entry(message: &StoredMessage) -> Entry {
    Entry {
        offset: message.position.offset,
        seq: message.seq,
        publication: message.publication.clone().map(Arc::new),
        time_ms: message.time_ms,
    }
}

fn age(time_ms: u64, now_ms: u64) -> Duration {
    Duration::from_millis(now_ms.saturating_sub(time_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::history::{HistoryQuery, Stream};

    const TTL: Duration = Duration::from_secs(60);

    fn message(seq: u64, offset: u64, epoch: &str) -> StoredMessage {
        let publication = Publication { offset, ..Default::default() };
        let position = StreamPosition { offset, epoch: epoch.into() };
        StoredMessage { seq, position, publication: Some(publication), time_ms: 1_000, prev: seq.saturating_sub(1) }
    }

    fn meta(seq: u64, offset: u64, epoch: &str) -> StoredMessage {
        StoredMessage { publication: None, ..message(seq, offset, epoch) }
    }

    fn offsets(recent: &Recent) -> Vec<u64> {
        recent.visible(TTL, 2_000).map(|(p, _)| p.offset).collect()
    }

    fn at(offset: u64) -> StreamPosition {
        StreamPosition { offset, epoch: "e".into() }
    }

    #[test]
    fn it_keeps_the_last_history_size_messages_and_then_knows_the_whole_history() {
        let mut recent = Recent::new(3);
        recent.restart_at(&at(4));
        recent.record(&message(10, 5, "e"));
        assert!(recent.covers(Wanted::After { offset: 4, count: 10 }, TTL, 2_000));
        assert!(!recent.covers(Wanted::After { offset: 3, count: 10 }, TTL, 2_000), "offset 4 was never seen");
        assert!(!recent.covers(Wanted::Oldest(1), TTL, 2_000));
        for (seq, offset) in [(11, 6), (12, 7), (13, 8)] {
            recent.record(&message(seq, offset, "e"));
        }
        assert_eq!(offsets(&recent), vec![6, 7, 8]);
        assert!(recent.covers(Wanted::Oldest(1), TTL, 2_000), "the store dropped offset 5 as well");
        assert!(recent.is_at(&at(8), Some(13)));
        assert!(!recent.is_at(&at(8), Some(14)));
    }

    #[test]
    fn a_meta_message_clears_it_and_a_duplicate_changes_nothing() {
        let mut recent = Recent::new(10);
        recent.restart_at(&at(0));
        recent.record(&message(1, 1, "e"));
        recent.record(&message(2, 2, "e"));
        recent.record(&message(2, 2, "e"));
        assert_eq!(offsets(&recent), vec![1, 2]);
        recent.record(&meta(3, 2, "e"));
        assert!(offsets(&recent).is_empty());
        assert!(recent.covers(Wanted::Oldest(5), TTL, 2_000));
        recent.record(&message(4, 3, "e"));
        assert_eq!(offsets(&recent), vec![3]);
    }

    #[test]
    fn a_new_epoch_or_a_gap_starts_over() {
        let mut recent = Recent::new(10);
        recent.restart_at(&at(0));
        recent.record(&message(1, 1, "e"));
        recent.record(&message(5, 1, "x"));
        assert_eq!(offsets(&recent), vec![1]);
        assert!(recent.covers(Wanted::Oldest(5), TTL, 2_000), "offset 1 starts an epoch");
        recent.record(&message(9, 4, "x"));
        assert_eq!(offsets(&recent), vec![4]);
        assert!(!recent.covers(Wanted::After { offset: 2, count: 1 }, TTL, 2_000));
    }

    #[test]
    fn expired_publications_are_not_visible() {
        let mut recent = Recent::new(10);
        recent.restart_at(&at(0));
        recent.record(&message(1, 1, "e"));
        recent.record(&StoredMessage { time_ms: 50_000, ..message(2, 2, "e") });
        assert_eq!(recent.visible(TTL, 62_000).map(|(p, _)| p.offset).collect::<Vec<_>>(), vec![2]);
        recent.expire(TTL, 62_000);
        assert!(!recent.covers(Wanted::After { offset: 0, count: 5 }, TTL, 62_000));
        assert!(recent.covers(Wanted::After { offset: 1, count: 5 }, TTL, 62_000));
    }

    #[test]
    fn a_store_read_fills_in_what_came_before() {
        let mut recent = Recent::new(10);
        recent.restart_at(&at(5));
        recent.record(&message(20, 6, "e"));
        let generation = recent.generation();
        let read = Span { messages: (3..=6).map(|n| message(n + 14, n, "e")).collect(), reached_start: true };
        recent.backfill(&read, generation);
        assert_eq!(offsets(&recent), vec![3, 4, 5, 6]);
        assert!(recent.covers(Wanted::Oldest(10), TTL, 2_000), "the read reached the start");
        assert!(recent.is_at(&at(6), Some(20)));
        let stream = Stream::restore(at(6), recent.visible(TTL, 2_000), 10, std::time::Instant::now());
        let page = stream.read(&HistoryQuery { since: None, limit: Some(2), reverse: false }).expect("page");
        assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn a_store_read_fills_an_empty_cache_up_to_its_top() {
        let mut recent = Recent::new(10);
        recent.restart_at(&at(5));
        let read = Span { messages: (4..=5).map(|n| message(n + 10, n, "e")).collect(), reached_start: false };
        recent.backfill(&read, recent.generation());
        assert_eq!(offsets(&recent), vec![4, 5]);
        assert!(recent.is_at(&at(5), Some(15)), "the store's last message is the cache's");
        assert!(!recent.covers(Wanted::Oldest(1), TTL, 2_000));
        recent.record(&message(15, 5, "e"));
        recent.record(&message(16, 6, "e"));
        assert_eq!(offsets(&recent), vec![4, 5, 6]);
    }

    #[test]
    fn a_store_read_from_before_a_restart_is_not_used() {
        let mut recent = Recent::new(10);
        recent.restart_at(&at(5));
        let generation = recent.generation();
        recent.record(&meta(20, 5, "e"));
        recent.record(&message(21, 6, "e"));
        let read = Span { messages: (3..=5).map(|n| message(n + 10, n, "e")).collect(), reached_start: true };
        recent.backfill(&read, generation);
        assert_eq!(offsets(&recent), vec![6]);
    }
}
