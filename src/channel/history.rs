//! The memory engine's per-channel stream: bounded, TTL-limited history with contiguous offsets
//! and a random epoch, plus the history-read and recovery rules of Centrifugo
//! (protocol-client.md §3.7, §6.6). Pure data structure; the [`super::Channel`] actor owns one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};

use crate::domain::{deadline_after, Publication, StreamPosition};

/// A fresh random epoch.
pub fn new_epoch() -> Arc<str> {
    Alphanumeric.sample_string(&mut rand::rng(), 8).into()
}

/// What a history read asks for.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Continue after (or, reversed, before) this position.
    pub since: Option<StreamPosition>,
    /// Max publications; 0 = position only; `None` = no limit.
    pub limit: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

/// Which stored publications answer a read, by offset, relative to the stream's top: what a
/// bounded read of cluster-wide history fetches and what a cache must hold to answer alone.
/// Counts are of visible publications (within `history_ttl`, not meta messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Nothing but the top (`limit: 0`, a `since` in another epoch, a recovery that cannot
    /// succeed).
    Top,
    /// The oldest `n`.
    Oldest(usize),
    /// The first `n` after `offset`.
    After {
        /// Exclusive lower bound.
        offset: u64,
        /// How many.
        count: usize,
    },
    /// The last `n` before `offset`.
    Before {
        /// Exclusive upper bound.
        offset: u64,
        /// How many.
        count: usize,
    },
}

impl Wanted {
    /// What [`Stream::read`] of `query` looks at on a stream whose top is `top`.
    pub fn for_query(query: &HistoryQuery, top: &StreamPosition) -> Self {
        let count = query.limit.unwrap_or(usize::MAX);
        let foreign = |since: &StreamPosition| !since.epoch.is_empty() && since.epoch != top.epoch;
        match (&query.since, query.reverse) {
            _ if count == 0 => Wanted::Top,
            (Some(since), _) if foreign(since) => Wanted::Top,
            (Some(since), true) if since.offset == 0 => Wanted::Top,
            (None, false) => Wanted::Oldest(count),
            (Some(since), false) => Wanted::After { offset: since.offset, count },
            (None, true) => Wanted::Before { offset: top.offset.saturating_add(1), count },
            (Some(since), true) => Wanted::Before { offset: since.offset, count },
        }
    }

    /// What [`Stream::recover_in`] from `since` with at most `max` publications looks at.
    /// Stream recovery that cannot succeed (another epoch, further behind than `max`, ahead of
    /// the top) needs nothing.
    pub fn for_recovery(mode: RecoveryMode, since: &StreamPosition, top: &StreamPosition, max: usize) -> Self {
        let foreign = !since.epoch.is_empty() && since.epoch != top.epoch;
        match mode {
            // At the top the answer is the same with or without the latest publication.
            RecoveryMode::Cache if since == top => Wanted::Top,
            RecoveryMode::Cache => Wanted::Before { offset: top.offset.saturating_add(1), count: 1 },
            _ if foreign || since.offset > top.offset => Wanted::Top,
            _ if top.offset - since.offset > max as u64 => Wanted::Top,
            RecoveryMode::Stream => Wanted::After { offset: since.offset, count: max },
        }
    }
}

/// A page of history plus the current top of the stream.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    /// Publications in the requested order.
    pub publications: Vec<Arc<Publication>>,
    /// Current top position.
    pub position: StreamPosition,
}

/// Why a history read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryError {
    /// `since.epoch` names another incarnation of the stream (112).
    EpochMismatch,
    /// Reverse read from offset 0 (client 107, API 100).
    ReverseFromZero,
    /// The cluster-wide store could not be read (NATS down); try again later.
    Unavailable,
}

/// Result of a recovery attempt.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Continuity is guaranteed: `publications` are exactly the missed ones.
    pub recovered: bool,
    /// Missed publications, oldest first (empty unless recovered).
    pub publications: Vec<Arc<Publication>>,
    /// Current top position.
    pub position: StreamPosition,
}

#[derive(Clone)]
struct Entry {
    publication: Arc<Publication>,
    expires: Instant,
}

/// The version of a stream's last publication (`version`, `version_epoch`), kept with its
/// position: publications with an older version are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastVersion {
    /// 0 when the last publication was unversioned.
    pub version: u64,
    /// Its `version_epoch`.
    pub epoch: String,
}

/// A channel's publication stream. Cloning shares the publications.
#[derive(Clone)]
pub struct Stream {
    epoch: Arc<str>,
    top: u64,
    items: VecDeque<Entry>,
    size: usize,
    ttl: Duration,
    last_version: LastVersion,
}

impl Stream {
    /// A stream continuing from `position` (or a fresh epoch at offset 0).
    pub fn new(position: Option<StreamPosition>, size: usize, ttl: Duration) -> Self {
        let position = position.unwrap_or_else(|| StreamPosition { offset: 0, epoch: new_epoch() });
        let (epoch, top) = (position.epoch, position.offset);
        // Room for one publication: many streams (a broadcast's channels) only ever hold one.
        Self { epoch, top, items: VecDeque::with_capacity(1), size, ttl, last_version: LastVersion::default() }
    }

    /// Continues the versions of an earlier incarnation of this stream.
    pub fn with_last_version(mut self, last_version: LastVersion) -> Self {
        self.last_version = last_version;
        self
    }

    /// The version of the last publication.
    pub fn last_version(&self) -> &LastVersion {
        &self.last_version
    }

    /// Whether `publication` carries a version that is not newer than the last one.
    pub fn is_outdated(&self, publication: &Publication) -> bool {
        publication.is_outdated(self.last_version.version, &self.last_version.epoch)
    }

    /// A stream at `position` holding `items` (publication and remaining lifetime, oldest
    /// first), as read back from cluster-wide storage.
    pub fn restore<P: Into<Arc<Publication>>>(
        position: StreamPosition,
        items: impl IntoIterator<Item = (P, Duration)>,
        size: usize,
        now: Instant,
    ) -> Self {
        let items: VecDeque<Entry> = items
            .into_iter()
            .map(|(publication, left)| Entry { publication: publication.into(), expires: deadline_after(now, left) })
            .collect();
        let (epoch, top) = (position.epoch, position.offset);
        Self { epoch, top, items, size, ttl: Duration::ZERO, last_version: LastVersion::default() }
    }

    /// The top of the stream.
    pub fn position(&self) -> StreamPosition {
        StreamPosition { offset: self.top, epoch: self.epoch.clone() }
    }

    /// No publication is retained.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends a publication with the next offset.
    pub fn append(&mut self, mut publication: Publication, now: Instant) -> Arc<Publication> {
        self.top += 1;
        publication.offset = self.top;
        self.last_version = LastVersion { version: publication.version, epoch: publication.version_epoch.clone() };
        let publication = Arc::new(publication);
        self.items.push_back(Entry { publication: publication.clone(), expires: deadline_after(now, self.ttl) });
        while self.items.len() > self.size {
            self.items.pop_front();
        }
        publication
    }

    /// When the oldest retained publication expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.items.front().map(|e| e.expires)
    }

    /// Drops expired publications.
    pub fn expire(&mut self, now: Instant) {
        while self.items.front().is_some_and(|e| e.expires <= now) {
            self.items.pop_front();
        }
    }

    /// Reads history with Centrifugo's rules.
    pub fn read(&self, query: &HistoryQuery) -> Result<HistoryPage, HistoryError> {
        let position = self.position();
        let limit = query.limit.unwrap_or(usize::MAX);
        if let Some(since) = &query.since {
            if !since.epoch.is_empty() && since.epoch != self.epoch {
                return Err(HistoryError::EpochMismatch);
            }
            if query.reverse && since.offset == 0 {
                return Err(HistoryError::ReverseFromZero);
            }
        }
        if limit == 0 {
            return Ok(HistoryPage { publications: Vec::new(), position });
        }
        let publications = match (&query.since, query.reverse) {
            (None, false) => self.items.iter().take(limit).map(|e| e.publication.clone()).collect(),
            (None, true) => self.items.iter().rev().take(limit).map(|e| e.publication.clone()).collect(),
            (Some(since), false) => self
                .items
                .iter()
                .filter(|e| e.publication.offset > since.offset)
                .take(limit)
                .map(|e| e.publication.clone())
                .collect(),
            (Some(since), true) => self
                .items
                .iter()
                .rev()
                .filter(|e| e.publication.offset < since.offset)
                .take(limit)
                .map(|e| e.publication.clone())
                .collect(),
        };
        Ok(HistoryPage { publications, position })
    }

    /// Recovers from the client's position with at most `max` publications.
    pub fn recover(&self, since: &StreamPosition, max: usize) -> Recovery {
        let position = self.position();
        let query = HistoryQuery { since: Some(since.clone()), limit: Some(max), reverse: false };
        let Ok(page) = self.read(&query) else {
            return Recovery { recovered: false, publications: Vec::new(), position };
        };
        let recovered = match (page.publications.first(), page.publications.last()) {
            (None, _) => since.offset == position.offset,
            (Some(first), Some(last)) => first.offset == since.offset + 1 && last.offset == position.offset,
            (Some(_), None) => false,
        };
        let publications = if recovered { page.publications } else { Vec::new() };
        Recovery { recovered, publications, position }
    }

    /// Cache recovery (`force_recovery_mode: cache`): only the latest publication matters. A
    /// client already at the top gets nothing more; any other client gets the latest one.
    /// Without any retained publication, only a client at a non-zero top is recovered.
    pub fn recover_cache(&self, since: &StreamPosition) -> Recovery {
        let position = self.position();
        let at_top = since.offset == position.offset && since.epoch == position.epoch;
        match self.items.back() {
            None => Recovery { recovered: at_top && since.offset > 0, publications: Vec::new(), position },
            Some(_) if at_top => Recovery { recovered: true, publications: Vec::new(), position },
            Some(latest) => Recovery { recovered: true, publications: vec![latest.publication.clone()], position },
        }
    }

    /// Recovery in the namespace's mode.
    pub fn recover_in(&self, mode: RecoveryMode, since: &StreamPosition, max: usize) -> Recovery {
        match mode {
            RecoveryMode::Stream => self.recover(since, max),
            RecoveryMode::Cache => self.recover_cache(since),
        }
    }
}

/// How a namespace recovers missed publications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Every missed publication, or nothing (not recovered).
    #[default]
    Stream,
    /// Only the latest publication (state channels).
    Cache,
}

#[cfg(test)]
mod tests {

    use crate::domain::Payload;

    use super::*;

    fn publication(n: u32) -> Publication {
        Publication { data: Payload::from(n.to_string().as_str()), ..Default::default() }
    }

    fn stream_with(n: u32, size: usize) -> (Stream, Instant) {
        let now = Instant::now();
        let mut s = Stream::new(None, size, Duration::from_secs(60));
        for i in 1..=n {
            s.append(publication(i), now);
        }
        (s, now)
    }

    fn offsets(pubs: &[Arc<Publication>]) -> Vec<u64> {
        pubs.iter().map(|p| p.offset).collect()
    }

    #[test]
    fn cache_recovery_returns_only_the_latest_publication() {
        let (s, _) = stream_with(5, 10);
        let top = s.position();
        let behind = StreamPosition { offset: 2, epoch: top.epoch.clone() };
        let recovery = s.recover_cache(&behind);
        assert!(recovery.recovered);
        assert_eq!(offsets(&recovery.publications), vec![5]);
        let fresh = s.recover_cache(&StreamPosition { offset: 0, epoch: "".into() });
        assert_eq!((fresh.recovered, offsets(&fresh.publications)), (true, vec![5]), "any client gets the state");
        let at_top = s.recover_cache(&top);
        assert_eq!((at_top.recovered, at_top.publications.len()), (true, 0));
        let (empty, _) = stream_with(0, 10);
        assert!(!empty.recover_cache(&StreamPosition { offset: 0, epoch: empty.position().epoch }).recovered);
    }

    #[test]
    fn offsets_are_contiguous_and_size_is_bounded() {
        let (s, _) = stream_with(5, 3);
        assert_eq!(s.position().offset, 5);
        let page = s.read(&HistoryQuery { limit: None, ..Default::default() }).unwrap();
        assert_eq!(offsets(&page.publications), vec![3, 4, 5]);
    }

    #[test]
    fn limit_zero_returns_position_only_and_reverse_reads_newest_first() {
        let (s, _) = stream_with(5, 10);
        let page = s.read(&HistoryQuery { limit: Some(0), ..Default::default() }).unwrap();
        assert!(page.publications.is_empty());
        assert_eq!(page.position.offset, 5);
        let page = s.read(&HistoryQuery { limit: Some(2), reverse: true, since: None }).unwrap();
        assert_eq!(offsets(&page.publications), vec![5, 4]);
    }

    #[test]
    fn since_reads_after_or_before_and_checks_epoch() {
        let (s, _) = stream_with(5, 10);
        let since = Some(StreamPosition { offset: 2, epoch: s.position().epoch });
        let page = s.read(&HistoryQuery { since: since.clone(), limit: None, reverse: false }).unwrap();
        assert_eq!(offsets(&page.publications), vec![3, 4, 5]);
        let page = s.read(&HistoryQuery { since, limit: None, reverse: true }).unwrap();
        assert_eq!(offsets(&page.publications), vec![1]);
        let wrong = Some(StreamPosition { offset: 2, epoch: "other".into() });
        assert_eq!(
            s.read(&HistoryQuery { since: wrong, limit: None, reverse: false }).unwrap_err(),
            HistoryError::EpochMismatch
        );
        let zero = Some(StreamPosition { offset: 0, epoch: "".into() });
        assert_eq!(
            s.read(&HistoryQuery { since: zero, limit: None, reverse: true }).unwrap_err(),
            HistoryError::ReverseFromZero
        );
    }

    #[test]
    fn recovery_succeeds_only_with_continuity() {
        let (s, _) = stream_with(5, 3);
        let epoch = s.position().epoch;
        let ok = s.recover(&StreamPosition { offset: 3, epoch: epoch.clone() }, 300);
        assert!(ok.recovered);
        assert_eq!(offsets(&ok.publications), vec![4, 5]);
        let up_to_date = s.recover(&StreamPosition { offset: 5, epoch: epoch.clone() }, 300);
        assert!(up_to_date.recovered && up_to_date.publications.is_empty());
        let gone = s.recover(&StreamPosition { offset: 1, epoch: epoch.clone() }, 300);
        assert!(!gone.recovered && gone.publications.is_empty());
        let cut = s.recover(&StreamPosition { offset: 3, epoch: epoch.clone() }, 1);
        assert!(!cut.recovered);
        let other_epoch = s.recover(&StreamPosition { offset: 5, epoch: "x".into() }, 300);
        assert!(!other_epoch.recovered);
    }

    #[test]
    fn a_restored_stream_answers_recovery_like_a_live_one() {
        let now = Instant::now();
        let epoch: Arc<str> = "e".into();
        let items = (3..=5).map(|n| {
            let mut p = publication(n);
            p.offset = n as u64;
            (p, Duration::from_secs(60))
        });
        let s = Stream::restore(StreamPosition { offset: 5, epoch: epoch.clone() }, items, 10, now);
        let ok = s.recover(&StreamPosition { offset: 2, epoch: epoch.clone() }, 300);
        assert!(ok.recovered);
        assert_eq!(offsets(&ok.publications), vec![3, 4, 5]);
        assert!(!s.recover(&StreamPosition { offset: 1, epoch }, 300).recovered);
    }

    #[test]
    fn a_read_wants_only_what_it_returns() {
        let top = StreamPosition { offset: 50, epoch: "e".into() };
        let at = |offset| Some(StreamPosition { offset, epoch: "e".into() });
        let query = |since, limit, reverse| HistoryQuery { since, limit, reverse };
        assert_eq!(Wanted::for_query(&query(None, Some(0), false), &top), Wanted::Top);
        assert_eq!(Wanted::for_query(&query(None, Some(1), false), &top), Wanted::Oldest(1));
        assert_eq!(Wanted::for_query(&query(None, Some(2), true), &top), Wanted::Before { offset: 51, count: 2 });
        assert_eq!(Wanted::for_query(&query(at(7), Some(3), false), &top), Wanted::After { offset: 7, count: 3 });
        assert_eq!(Wanted::for_query(&query(at(7), None, true), &top), Wanted::Before { offset: 7, count: usize::MAX });
        let other = Some(StreamPosition { offset: 7, epoch: "x".into() });
        assert_eq!(Wanted::for_query(&query(other, None, false), &top), Wanted::Top);
        assert_eq!(Wanted::for_query(&query(at(0), None, true), &top), Wanted::Top);
    }

    #[test]
    fn a_recovery_wants_the_missed_publications_or_nothing() {
        let top = StreamPosition { offset: 50, epoch: "e".into() };
        let since = |offset| StreamPosition { offset, epoch: "e".into() };
        let stream = RecoveryMode::Stream;
        assert_eq!(Wanted::for_recovery(stream, &since(45), &top, 10), Wanted::After { offset: 45, count: 10 });
        assert_eq!(Wanted::for_recovery(stream, &since(30), &top, 10), Wanted::Top, "too far behind");
        assert_eq!(Wanted::for_recovery(stream, &since(60), &top, 10), Wanted::Top, "ahead");
        let other = StreamPosition { offset: 45, epoch: "x".into() };
        assert_eq!(Wanted::for_recovery(stream, &other, &top, 10), Wanted::Top);
        let latest = Wanted::Before { offset: 51, count: 1 };
        assert_eq!(Wanted::for_recovery(RecoveryMode::Cache, &other, &top, 10), latest);
    }

    #[test]
    fn expired_publications_are_dropped_but_offsets_continue() {
        let (mut s, now) = stream_with(3, 10);
        s.expire(now + Duration::from_secs(61));
        assert!(s.is_empty());
        let next = s.append(publication(4), now);
        assert_eq!(next.offset, 4);
    }
}
