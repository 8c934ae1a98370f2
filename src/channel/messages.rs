//! The channel actor's inbox. Every message comes from the [`crate::registry::Registry`],
//! which counts them so that a channel is only removed when nothing is in flight to it.

use actix::prelude::*;

use super::history::{HistoryError, HistoryPage, HistoryQuery};
use crate::client::messages::ClientHandle;
use crate::domain::{ClientId, ClientInfo, Publication, StreamPosition};

/// Adds a subscriber. The channel answers the client directly with
/// [`crate::client::messages::Deliver::Subscribed`] before any frame of this channel.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Join {
    /// The subscriber.
    pub client: ClientHandle,
    /// Its info, for join/leave pushes.
    pub info: ClientInfo,
    /// It wants join/leave pushes.
    pub push_join_leave: bool,
    /// Its own join and leave are announced (the namespace's `join_leave`, or an override).
    pub emit_join_leave: bool,
    /// Recover from this position (recoverable subscriptions only).
    pub recover: Option<StreamPosition>,
    /// Max publications recovery may return.
    pub recovery_limit: usize,
    /// Fossil delta, if the subscription negotiated it.
    pub delta: DeltaMode,
}

/// How a subscription takes publications (protocol-extensions.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeltaMode {
    /// No delta negotiated: publications as they are.
    #[default]
    Off,
    /// Delta negotiated on a subscription without positioning: always full payloads (the JSON
    /// protocol carries them as JSON strings).
    Full,
    /// Delta negotiated on a positioned subscription: after the first full publication, patches
    /// against the previous one whenever they are smaller.
    Patches,
}

/// Removes a subscriber (client unsubscribe or disconnect).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// The subscriber.
    pub client: ClientId,
}

/// Publishes into the channel; the stream position (when the channel keeps history) goes to
/// `reply` before the publication fans out.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Broadcast {
    /// The publication (offset assigned here).
    pub publication: Publication,
    /// Do not keep it in history.
    pub skip_history: bool,
    /// A repeat of this key within [`super::IDEMPOTENCY_WINDOW`] returns the first result and
    /// delivers nothing.
    pub idempotency_key: Option<String>,
    /// Where the publisher waits for the outcome (none for publications from other nodes).
    pub reply: Option<crate::registry::messages::PublishReply>,
}

/// Reads history.
#[derive(Debug, Message)]
#[rtype(result = "Result<HistoryPage, HistoryError>")]
pub struct ReadHistory(pub HistoryQuery);

/// Drops every retained publication, keeping the stream position.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoveHistory;

/// Ends an idle channel; sent by the registry after it forgot the channel.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Pushes a join or leave that happened on another node to local subscribers (cluster mode).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FanOutJoinLeave {
    /// Join (else leave).
    pub join: bool,
    /// Who.
    pub info: ClientInfo,
}

/// NATS relays this channel to this node now (cluster mode); a store-backed channel reads its
/// position before answering any subscriber.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Watched;

/// Compare the delivered position with the cluster-wide store now, not at the next periodic
/// check: sent after the NATS connection came back, when live publications may have been missed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CheckPosition;

/// A publication (or position marker) stored in the cluster-wide history, arriving live.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stored(pub crate::cluster::history::StoredMessage);
