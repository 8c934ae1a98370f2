//! A channel whose history lives in the cluster-wide store (JetStream).
//!
//! The channel keeps the position it has delivered up to, and the messages it delivered lately
//! ([`Recent`], at most `history_size`). Stored publications arrive in offset order through the
//! store's live subject; a duplicate is dropped, and a hole (a re-published message overtaken,
//! or lost while NATS reconnected) is filled from the store before anything newer goes out, so
//! subscribers see every offset once, in order. While the channel fills a hole it handles
//! nothing else (`ctx.wait`): joins and publications wait in the mailbox and keep their order.
//!
//! A recovering subscriber is answered from the recent messages when they reach back to its
//! position. Otherwise the channel reads the missing range from the store *without* waiting for
//! it: other joins and publications go on, the read fills the recent messages in from below,
//! and the subscriber is answered against what has been delivered by then (recovered
//! publications, then live ones: none missing, none twice). Messages for a client whose join
//! waits on such a read wait with it and are handled after it, in order.

mod recovery;

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::super::messages::{CheckPosition, Join, Leave, Stored, Watched};
use super::super::recent::Recent;
use super::Channel;
use crate::channel::history::Wanted;
use crate::channel::HistoryShape;
use crate::client::messages::Deliver;
use crate::cluster::history::{HistoryStore, StoreError, StoredMessage};
use crate::domain::{ClientId, StreamPosition};
use crate::protocol::{Disconnect, ReplyError};

/// The store, how far this channel has delivered, and what it delivered lately.
pub(super) struct SharedHistory {
    store: Arc<HistoryStore>,
    shape: HistoryShape,
    /// `None` until the position was read from the store (or after that failed).
    delivered: Option<StreamPosition>,
    /// The messages delivered lately; always at `delivered`.
    recent: Recent,
    /// Clients whose join waits on a store read, with their later joins and leaves.
    waiting: HashMap<ClientId, Vec<Deferred>>,
}

/// A message for a client whose join waits on a store read.
enum Deferred {
    Join(Join),
    Leave(Leave),
}

impl SharedHistory {
    pub(super) fn new(store: Arc<HistoryStore>, shape: HistoryShape) -> Self {
        Self { store, shape, delivered: None, recent: Recent::new(shape.size), waiting: HashMap::new() }
    }

    pub(super) fn position_check(&self) -> std::time::Duration {
        self.store.position_check()
    }

    /// No join waits on a store read.
    pub(super) fn is_settled(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// What to do with a stored message that arrived live.
#[derive(Debug, PartialEq, Eq)]
enum Arrival {
    /// Next in line: deliver it.
    Next,
    /// Already delivered (or older): drop it.
    Old,
    /// Offsets between the delivered one and it are missing: fill them first.
    Gap,
    /// A new epoch (the channel's history expired or was reset): start over from it.
    NewEpoch,
}

fn classify(delivered: &StreamPosition, arrived: &StreamPosition) -> Arrival {
    if arrived.epoch != delivered.epoch {
        Arrival::NewEpoch
    } else if arrived.offset <= delivered.offset {
        Arrival::Old
    } else if arrived.offset == delivered.offset + 1 {
        Arrival::Next
    } else {
        Arrival::Gap
    }
}

impl Handler<CheckPosition> for Channel {
    type Result = ();

    fn handle(&mut self, _: CheckPosition, ctx: &mut Self::Context) {
        // NATS was away: a history_remove may have happened unseen, so the recent messages are
        // no longer to be trusted.
        if let Some(shared) = self.shared.as_mut() {
            if let Some(delivered) = &shared.delivered {
                shared.recent.restart_at(delivered);
            }
        }
        self.check_position(ctx);
        self.processed_one();
    }
}

impl Handler<Watched> for Channel {
    type Result = ();

    /// NATS now relays this channel to this node: read where it stands, before any subscriber
    /// is answered (nothing can be delivered before that, so waiting costs nobody anything).
    fn handle(&mut self, _: Watched, ctx: &mut Self::Context) {
        let Some(shared) = &self.shared else { return self.processed_one() };
        let (store, shape, name) = (shared.store.clone(), shared.shape, self.name.clone());
        let reading = async move { store.position(shape, name.as_str()).await };
        ctx.wait(reading.into_actor(self).map(|position, this, _| {
            match position {
                Ok(position) => this.advance_to(position),
                Err(error) => {
                    tracing::warn!(channel = %this.name, %error, "cannot read the channel's position from JetStream")
                }
            }
            this.processed_one();
        }));
    }
}

impl Channel {
    fn advance_to(&mut self, position: StreamPosition) {
        if let Some(shared) = self.shared.as_mut() {
            let newer = shared
                .delivered
                .as_ref()
                .is_none_or(|known| known.epoch != position.epoch || known.offset < position.offset);
            if newer {
                shared.recent.restart_at(&position);
                shared.delivered = Some(position);
            }
        }
    }

    /// A subscriber joins a store-backed channel; recovery reads the store when the client is
    /// behind what the recent messages reach.
    pub(super) fn join_shared(&mut self, join: Join, ctx: &mut Context<Self>) {
        let Some(shared) = self.shared.as_mut() else { return };
        if let Some(waiting) = shared.waiting.get_mut(&join.client.id) {
            return waiting.push(Deferred::Join(join));
        }
        let Some(delivered) = shared.delivered.clone() else {
            return self.read_position_then_join(join, ctx);
        };
        match join.recover.clone() {
            None => {
                self.admit(join, Ok(crate::client::messages::Subscribed { position: Some(delivered), recovery: None }))
            }
            Some(since) => self.recover(join, since, ctx),
        }
    }

    /// A subscriber leaves, after its join if that waits on a store read.
    pub(super) fn leave_shared(&mut self, leave: Leave) -> Option<Leave> {
        let Some(waiting) = self.shared.as_mut().and_then(|s| s.waiting.get_mut(&leave.client)) else {
            return Some(leave);
        };
        waiting.push(Deferred::Leave(leave));
        None
    }

    /// Handles what waited for `client`'s join, in order, until one waits again.
    fn replay_waiting(&mut self, client: &ClientId, ctx: &mut Context<Self>) {
        let Some(deferred) = self.shared.as_mut().and_then(|s| s.waiting.remove(client)) else { return };
        let mut deferred = deferred.into_iter();
        while let Some(message) = deferred.next() {
            match message {
                Deferred::Join(join) => self.join_shared(join, ctx),
                Deferred::Leave(leave) => self.leave(leave),
            }
            if let Some(waiting) = self.shared.as_mut().and_then(|s| s.waiting.get_mut(client)) {
                waiting.extend(deferred);
                return;
            }
        }
    }

    /// The position could not be read when the channel started (NATS was down): try again
    /// before answering; if it still fails, the client gets an error and retries. Nothing can
    /// be delivered without a position, so no subscriber is here to be held up by the wait.
    fn read_position_then_join(&mut self, join: Join, ctx: &mut Context<Self>) {
        let Some(shared) = &self.shared else { return };
        let (store, shape, name) = (shared.store.clone(), shared.shape, self.name.clone());
        let reading = async move { store.position(shape, name.as_str()).await };
        ctx.wait(reading.into_actor(self).map(|position, this, ctx| match position {
            Ok(position) => {
                this.advance_to(position);
                this.join_shared(join, ctx);
            }
            Err(error) => {
                tracing::warn!(channel = %this.name, %error, "cannot read the channel's position from JetStream");
                this.admit(join, Err(ReplyError::Internal));
            }
        }));
    }
}

impl Handler<Stored> for Channel {
    type Result = ();

    fn handle(&mut self, Stored(message): Stored, ctx: &mut Self::Context) {
        self.on_stored(message, ctx);
        self.processed_one();
    }
}

impl Channel {
    fn on_stored(&mut self, message: StoredMessage, ctx: &mut Context<Self>) {
        let Some(shared) = &self.shared else { return };
        // Not synchronised yet: nobody is subscribed, the position read will cover it.
        let Some(delivered) = shared.delivered.clone() else { return };
        match classify(&delivered, &message.position) {
            // A meta message at the delivered position: history_remove. Forget what it removed.
            Arrival::Old if message.publication.is_none() && message.position == delivered => {
                if let Some(shared) = self.shared.as_mut() {
                    shared.recent.record(&message);
                }
            }
            Arrival::Old => {}
            Arrival::Next | Arrival::NewEpoch => self.deliver_stored(message),
            Arrival::Gap => self.catch_up(Some(message), ctx),
        }
    }

    fn deliver_stored(&mut self, message: StoredMessage) {
        if let Some(shared) = self.shared.as_mut() {
            shared.delivered = Some(message.position.clone());
            shared.recent.record(&message);
        }
        if let Some(publication) = &message.publication {
            self.deliver(publication);
        }
    }

    /// Reads the store and delivers, in order, every publication after the delivered one
    /// (and before `arrived`, which goes out last). Subscribers are disconnected with 3010 when
    /// some of them are no longer stored: they come back and recover what still is.
    fn catch_up(&mut self, arrived: Option<StoredMessage>, ctx: &mut Context<Self>) {
        let Some(shared) = &self.shared else { return };
        let Some(after) = shared.delivered.as_ref().map(|d| d.offset) else { return };
        let (store, shape, name) = (shared.store.clone(), shared.shape, self.name.clone());
        let ttl = self.namespace.options.history_ttl;
        let wanted = move |_: &StreamPosition| Wanted::After { offset: after, count: usize::MAX };
        let reading = async move { store.read_span(shape, name.as_str(), wanted, ttl).await };
        ctx.wait(reading.into_actor(self).map(move |read, this, _| {
            let Some(delivered) = this.shared.as_ref().and_then(|s| s.delivered.clone()) else { return };
            let before = arrived.as_ref().map(|m| m.position.offset);
            match continuation(read.map(|span| span.messages), &delivered, before) {
                Ok(messages) => messages.into_iter().for_each(|m| this.deliver_stored(m)),
                Err(error) => {
                    tracing::warn!(channel = %this.name, %error, "cannot deliver the publications this node missed; subscribers reconnect to recover (3010)");
                    this.drop_subscribers(Disconnect::INSUFFICIENT_STATE);
                }
            }
            if let Some(arrived) = arrived {
                this.deliver_stored(arrived);
            }
            // A hole may also have swallowed a history_remove (a meta message, no new offset).
            if let Some(shared) = this.shared.as_mut() {
                if let Some(delivered) = &shared.delivered {
                    shared.recent.restart_at(delivered);
                }
            }
        }));
    }

    /// Centrifugo's periodic position check: a publication this node missed while it could not
    /// hear NATS, with nothing published since, would otherwise stay missing.
    pub(super) fn check_position(&mut self, ctx: &mut Context<Self>) {
        let Some(shared) = &self.shared else { return };
        if self.subscribers.is_empty() || shared.delivered.is_none() {
            return;
        }
        let (store, shape, name) = (shared.store.clone(), shared.shape, self.name.clone());
        let reading = async move { store.top(shape, name.as_str()).await };
        ctx.spawn(reading.into_actor(self).map(|top, this, ctx| {
            let delivered = this.shared.as_ref().and_then(|s| s.delivered.clone());
            match (top, delivered) {
                (Ok(Some(top)), Some(delivered)) if top.epoch != delivered.epoch => {
                    this.advance_to(top);
                    this.drop_subscribers(Disconnect::INSUFFICIENT_STATE);
                }
                (Ok(Some(top)), Some(delivered)) if top.offset > delivered.offset => this.catch_up(None, ctx),
                (Err(error), _) => tracing::debug!(channel = %this.name, %error, "position check skipped"),
                _ => {}
            }
        }));
    }

    /// Disconnects every subscriber (they come back and recover from the store).
    fn drop_subscribers(&mut self, disconnect: Disconnect) {
        self.delta_subscribers = 0;
        for (_, subscriber) in self.subscribers.take_all() {
            subscriber.handle.send(Deliver::Disconnect(disconnect.clone()));
        }
    }
}

/// The stored publications right after `delivered` (and before offset `before`, when set):
/// all of them, contiguous, in order — or an error naming the offsets that are gone.
fn continuation(
    read: Result<Vec<StoredMessage>, StoreError>,
    delivered: &StreamPosition,
    before: Option<u64>,
) -> Result<Vec<StoredMessage>, StoreError> {
    let next: Vec<StoredMessage> = read?
        .into_iter()
        .filter(|m| m.position.epoch == delivered.epoch && m.position.offset > delivered.offset)
        .filter(|m| before.is_none_or(|before| m.position.offset < before))
        .collect();
    let contiguous = next.iter().zip(delivered.offset + 1..).all(|(m, expected)| m.position.offset == expected);
    let reaches = before.is_none_or(|before| delivered.offset + next.len() as u64 + 1 == before);
    if !contiguous || !reaches {
        return Err(StoreError::JetStream(format!(
            "publications after offset {} are no longer stored",
            delivered.offset
        )));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64, epoch: &str) -> StreamPosition {
        StreamPosition { offset, epoch: epoch.into() }
    }

    fn stored(offset: u64) -> StoredMessage {
        StoredMessage { seq: offset, position: at(offset, "e"), publication: None, time_ms: 0, prev: 0 }
    }

    #[test]
    fn arrivals_are_classified_by_offset_and_epoch() {
        let delivered = at(5, "e");
        assert_eq!(classify(&delivered, &at(6, "e")), Arrival::Next);
        assert_eq!(classify(&delivered, &at(5, "e")), Arrival::Old);
        assert_eq!(classify(&delivered, &at(3, "e")), Arrival::Old);
        assert_eq!(classify(&delivered, &at(8, "e")), Arrival::Gap);
        assert_eq!(classify(&delivered, &at(1, "x")), Arrival::NewEpoch);
    }

    fn offsets(messages: &[StoredMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.position.offset).collect()
    }

    #[test]
    fn a_gap_is_filled_only_when_every_missing_offset_is_stored() {
        let all = (1..=9).map(stored).collect::<Vec<_>>();
        let filled = continuation(Ok(all.clone()), &at(5, "e"), Some(8)).expect("complete");
        assert_eq!(offsets(&filled), vec![6, 7]);
        let trimmed: Vec<_> = all.into_iter().filter(|m| m.position.offset != 6).collect();
        assert!(continuation(Ok(trimmed.clone()), &at(5, "e"), Some(8)).is_err());
        assert!(continuation(Ok(trimmed), &at(5, "e"), None).is_err());
    }

    #[test]
    fn a_position_check_delivers_everything_after_the_delivered_offset() {
        let all = (1..=9).map(stored).collect::<Vec<_>>();
        assert_eq!(offsets(&continuation(Ok(all.clone()), &at(7, "e"), None).expect("complete")), vec![8, 9]);
        assert!(continuation(Ok(all.clone()), &at(9, "e"), None).expect("nothing new").is_empty());
        // Another epoch's messages are not a continuation.
        assert!(continuation(Ok(all), &at(3, "x"), None).expect("none of ours").is_empty());
    }
}
