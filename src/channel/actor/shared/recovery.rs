//! Reads of a store-backed channel's history: recovery for joining subscribers, and history
//! pages for the API and clients, each answered from the recent messages when they hold what
//! is asked and from a bounded store read otherwise. A store read never stops the channel.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::Channel;
use crate::channel::history::{HistoryError, HistoryPage, HistoryQuery, RecoveryMode, Stream, Wanted};
use crate::channel::messages::Join;
use crate::client::messages::Subscribed;
use crate::cluster::history::{unix_ms, Span, StoreError};
use crate::domain::{Publication, StreamPosition};
use crate::protocol::ReplyError;

/// How many times a recovery reads the store before it settles for "not recovered": a read
/// that the recent messages cannot continue (they started over meanwhile) is read again.
const RECOVERY_READS: u8 = 3;

impl Channel {
    /// Recovery from `since` for `join`: from the recent messages, or after a store read.
    pub(super) fn recover(&mut self, join: Join, since: StreamPosition, ctx: &mut Context<Self>) {
        match self.recovered_here(&since, join.recovery_limit) {
            Some(subscribed) => self.admit(join, Ok(subscribed)),
            None => self.read_then_recover(join, since, 1, ctx),
        }
    }

    /// The answer, when the recent messages hold all that recovery from `since` needs.
    fn recovered_here(&mut self, since: &StreamPosition, limit: usize) -> Option<Subscribed> {
        let (mode, ttl) = (self.namespace.recovery_mode, self.namespace.options.history_ttl);
        let now_ms = unix_ms();
        let shared = self.shared.as_mut()?;
        let delivered = shared.delivered.clone()?;
        shared.recent.expire(ttl, now_ms);
        let wanted = Wanted::for_recovery(mode, since, &delivered, limit);
        if !shared.recent.is_at(&delivered, None) || !shared.recent.covers(wanted, ttl, now_ms) {
            return None;
        }
        // Only what the recovery can return: the latest one, or those after the client's offset.
        let visible = shared.recent.visible(ttl, now_ms);
        let items: Vec<_> = match mode {
            RecoveryMode::Cache => visible.last().into_iter().collect(),
            RecoveryMode::Stream => visible.filter(|(p, _)| p.offset > since.offset).collect(),
        };
        self.recovery_against(items, since, limit)
    }

    /// Recovery against the delivered position with `items` as the retained publications.
    fn recovery_against<P: Into<std::sync::Arc<Publication>>>(
        &self,
        items: impl IntoIterator<Item = (P, Duration)>,
        since: &StreamPosition,
        limit: usize,
    ) -> Option<Subscribed> {
        let delivered = self.shared.as_ref()?.delivered.clone()?;
        let stream = Stream::restore(delivered.clone(), items, self.namespace.options.history_size, Instant::now());
        let recovery = stream.recover_in(self.namespace.recovery_mode, since, limit);
        Some(Subscribed { position: Some(delivered), recovery: Some(recovery) })
    }

    /// Reads what recovery needs from the store while the channel goes on; the client's other
    /// joins and leaves wait for the answer.
    fn read_then_recover(&mut self, join: Join, since: StreamPosition, reads: u8, ctx: &mut Context<Self>) {
        let (mode, ttl) = (self.namespace.recovery_mode, self.namespace.options.history_ttl);
        let delivered = self.shared.as_ref().and_then(|s| s.delivered.clone());
        let (Some(shared), Some(delivered)) = (self.shared.as_mut(), delivered) else {
            return self.admit(join, Err(ReplyError::Internal));
        };
        shared.waiting.entry(join.client.id.clone()).or_default();
        let generation = shared.recent.generation();
        let wanted = Wanted::for_recovery(mode, &since, &delivered, join.recovery_limit);
        let (store, shape, name) = (shared.store.clone(), shared.shape, self.name.clone());
        let reading = async move { store.read_span(shape, name.as_str(), move |_| wanted, ttl).await };
        ctx.spawn(reading.into_actor(self).map(move |read, this, ctx| {
            this.after_recovery_read(join, since, read, (generation, reads), ctx);
        }));
    }

    /// Answers a recovery after its store read (unless it reads again), then handles what
    /// waited for it.
    fn after_recovery_read(
        &mut self,
        join: Join,
        since: StreamPosition,
        read: Result<Span, StoreError>,
        (generation, reads): (u64, u8),
        ctx: &mut Context<Self>,
    ) {
        let client = join.client.id.clone();
        match read {
            Ok(span) => {
                if let Some(shared) = self.shared.as_mut() {
                    shared.recent.backfill(&span, generation);
                }
                match self.recovered_here(&since, join.recovery_limit) {
                    Some(subscribed) => self.admit(join, Ok(subscribed)),
                    // The recent messages started over meanwhile and the read no longer joins them.
                    None if reads < RECOVERY_READS => return self.read_then_recover(join, since, reads + 1, ctx),
                    None => {
                        tracing::info!(channel = %self.name, "recovery gave up on a channel that keeps starting over");
                        let none = std::iter::empty::<(Publication, Duration)>();
                        let subscribed = self.recovery_against(none, &since, 0);
                        self.admit(join, subscribed.ok_or(ReplyError::Internal));
                    }
                }
            }
            Err(error) => {
                tracing::warn!(channel = %self.name, %error, "recovery could not read JetStream");
                self.admit(join, Err(ReplyError::Internal));
            }
        }
        self.replay_waiting(&client, ctx);
    }

    /// A page of history: the store's last message (one direct get) says whether the recent
    /// messages are current; if they are and hold the page, it comes from them, else from a
    /// bounded store read.
    pub(in crate::channel::actor) fn read_shared_history(
        &mut self,
        query: HistoryQuery,
    ) -> ResponseActFuture<Self, Result<HistoryPage, HistoryError>> {
        let ttl = self.namespace.options.history_ttl;
        let Some(shared) = self.shared.as_mut() else {
            return Box::pin(actix::fut::ready(Err(HistoryError::Unavailable)));
        };
        let now_ms = unix_ms();
        shared.recent.expire(ttl, now_ms);
        let cached = shared.delivered.clone().filter(|delivered| {
            let wanted = Wanted::for_query(&query, delivered);
            shared.recent.is_at(delivered, None) && shared.recent.covers(wanted, ttl, now_ms)
        });
        let cached = cached.map(|delivered| {
            let items = shared.recent.visible(ttl, now_ms);
            let page = Stream::restore(delivered.clone(), items, shared.shape.size, Instant::now()).read(&query);
            (delivered, shared.recent.last_seq(), page)
        });
        let (store, shape, name) = (shared.store.clone(), shared.shape, self.name.clone());
        let generation = shared.recent.generation();
        let reading = async move {
            let top = store.last_message(shape, name.as_str()).await?;
            if let (Some(top), Some((position, seq, page))) = (&top, cached) {
                if top.seq == seq && top.position == position {
                    return Ok((page, None));
                }
            }
            let (page, span) = store.read_page(shape, name.as_str(), &query, ttl, top).await?;
            Ok((page, Some(span)))
        };
        Box::pin(reading.into_actor(self).map(move |read: Result<_, StoreError>, this, _| match read {
            Ok((page, span)) => {
                // What the store read brought fills the recent messages in, for the next reads.
                if let (Some(span), Some(shared)) = (span, this.shared.as_mut()) {
                    shared.recent.backfill(&span, generation);
                }
                page
            }
            Err(error) => {
                tracing::warn!(%error, channel = %this.name, "history read failed: JetStream is unavailable");
                Err(HistoryError::Unavailable)
            }
        }))
    }
}
