//! The registry's inbox: requests from client sessions and the HTTP API, notifications from
//! channels.

use std::collections::BTreeMap;

use actix::prelude::*;

use crate::channel::history::{HistoryError, HistoryPage, HistoryQuery};
use crate::channel::ResolvedChannel;
use crate::client::messages::ClientHandle;
use crate::domain::{ChannelName, ClientId, ClientInfo, Publication, StreamPosition};
use crate::presence::PresenceStats;
use crate::protocol::Disconnect;

/// Subscribes a client; the channel answers the client with `Deliver::Subscribed`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    /// The channel.
    pub channel: ResolvedChannel,
    /// The subscriber.
    pub client: ClientHandle,
    /// Its info (presence, join/leave).
    pub info: ClientInfo,
    /// It wants join/leave pushes.
    pub push_join_leave: bool,
    /// Its own join and leave are announced.
    pub emit_join_leave: bool,
    /// It is counted in the channel's presence (when the namespace tracks presence).
    pub emit_presence: bool,
    /// Recover from this position.
    pub recover: Option<StreamPosition>,
    /// Max publications recovery may return.
    pub recovery_limit: usize,
    /// Fossil delta, if negotiated.
    pub delta: crate::channel::messages::DeltaMode,
}

/// Unsubscribes a client (also sent for every subscription when a client goes away).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// The channel.
    pub channel: ChannelName,
    /// The client.
    pub client: ClientId,
}

/// Why a publish did not go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishFailed {
    /// The channel or the cluster relay is unavailable (mailbox gone, NATS down): "internal error".
    Unavailable,
    /// A new channel, and the node holds `node.channel_limit` channels: "limit exceeded" (106).
    ChannelLimit,
}

/// What a publish answers: the stream position when the channel keeps history (on this node).
pub type PublishOutcome = Result<Option<StreamPosition>, PublishFailed>;

/// Where a publisher waits for its [`PublishOutcome`]: the channel answers there directly, before
/// its fan-out wakes the subscribers.
pub type PublishReply = tokio::sync::oneshot::Sender<PublishOutcome>;

/// A [`Publish`] answered straight from the channel to `reply` (no hop through the registry's
/// task): how the API and clients publish, so their answer is not queued behind the fan-out.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PublishAnswering {
    pub publish: Publish,
    pub reply: PublishReply,
}

/// Publishes through `registry` and waits for the outcome (see [`PublishAnswering`]).
pub async fn publish(registry: &actix::Addr<super::Registry>, publish: Publish) -> PublishOutcome {
    let (reply, outcome) = tokio::sync::oneshot::channel();
    registry.do_send(PublishAnswering { publish, reply });
    outcome.await.unwrap_or(Err(PublishFailed::Unavailable))
}

/// Publishes to many channels at once (a broadcast's slice): one answer per publish, in order.
#[derive(Debug, Message)]
#[rtype(result = "Vec<PublishOutcome>")]
pub struct PublishEach(pub Vec<Publish>);

/// A publication for a channel, sent with [`publish`] (or in a [`PublishEach`]).
#[derive(Debug)]
pub struct Publish {
    /// The channel.
    pub channel: ResolvedChannel,
    /// The publication.
    pub publication: Publication,
    /// Do not keep it in history.
    pub skip_history: bool,
    /// Deduplication key (see [`crate::channel::IDEMPOTENCY_WINDOW`]).
    pub idempotency_key: Option<String>,
}

/// Reads a channel's history (the caller checked history is enabled).
#[derive(Debug, Message)]
#[rtype(result = "Result<Result<HistoryPage, HistoryError>, MailboxError>")]
pub struct History {
    /// The channel.
    pub channel: ResolvedChannel,
    /// What to read.
    pub query: HistoryQuery,
}

/// Drops a channel's retained publications.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoveHistory {
    /// The channel.
    pub channel: ResolvedChannel,
}

/// Presence of a channel on this node only (answers surveys from other nodes).
#[derive(Debug, Message)]
#[rtype(result = "BTreeMap<ClientId, ClientInfo>")]
pub struct LocalPresence {
    /// The channel.
    pub channel: ChannelName,
}

/// Presence of a channel (cluster-wide in cluster mode).
#[derive(Debug, Message)]
#[rtype(result = "Result<BTreeMap<ClientId, ClientInfo>, MailboxError>")]
pub struct Presence {
    /// The channel.
    pub channel: ChannelName,
}

/// Presence counters of a channel.
#[derive(Debug, Message)]
#[rtype(result = "Result<PresenceStats, MailboxError>")]
pub struct PresenceStatsOf {
    /// The channel.
    pub channel: ChannelName,
}

/// A connection authenticated.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ClientConnected {
    /// How to reach it.
    pub client: ClientHandle,
    /// Its user.
    pub user: std::sync::Arc<str>,
}

/// A connection ended (after it unsubscribed from everything).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ClientGone {
    /// The client.
    pub client: ClientId,
}

/// A channel has no subscribers (and no publish results to remember): its actor can go.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChannelIdle {
    /// The channel.
    pub name: ChannelName,
    /// Which incarnation of the channel reports.
    pub generation: u64,
    /// How many registry messages it had handled when it became idle.
    pub processed: u64,
    /// Its stream as it is now (memory engine; it shares the publications): parked by the
    /// registry so history outlives the actor and a re-created channel continues the stream.
    pub stream: Option<crate::channel::history::Stream>,
}

/// Closes every connection (shutdown).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct DisconnectAll(pub Disconnect);

/// Node counters.
#[derive(Debug, Message)]
#[rtype(result = "NodeStats")]
pub struct GetStats;

/// Node counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Connections.
    pub num_clients: usize,
    /// Distinct users.
    pub num_users: usize,
    /// Channels with at least one subscriber.
    pub num_channels: usize,
    /// Subscriptions.
    pub num_subs: usize,
}

/// Something the server API does to a user's connections on this node.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct ToUser {
    /// Target user (`""` targets anonymous connections).
    pub user: String,
    /// Only this connection, when set.
    pub client: Option<ClientId>,
    /// Only this session, when set (bidirectional WebSocket connections have no session id, so
    /// a non-empty filter matches nothing, as in Centrifugo).
    pub session: Option<String>,
    /// Connections to leave alone.
    pub whitelist: Vec<ClientId>,
    /// What to do.
    pub action: UserAction,
}

/// The action of [`ToUser`].
#[derive(Debug, Clone)]
pub enum UserAction {
    /// Server-side subscribe.
    Subscribe(crate::client::messages::ServerSubscribe),
    /// Server-side unsubscribe (`unsubscribe` push 2000).
    Unsubscribe(ChannelName),
    /// Close with this code.
    Disconnect(Disconnect),
    /// Refresh expiry / info.
    Refresh {
        /// Close now with 3005.
        expired: bool,
        /// New expiry (Unix s); `None` = never expires.
        expire_at: Option<i64>,
        /// New connection info.
        info: Option<crate::domain::Payload>,
    },
}

/// Active channels (with at least one subscriber) matching an optional glob pattern.
#[derive(Debug, Message)]
#[rtype(result = "BTreeMap<String, usize>")]
pub struct ListChannels {
    /// Compiled pattern; `None` = all.
    pub pattern: Option<regex::Regex>,
    /// The glob it was compiled from (what other nodes are asked with).
    pub glob: String,
    /// Include the other nodes (cluster mode).
    pub cluster: bool,
}

/// Channel traffic that arrived from NATS.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ClusterIn {
    /// The channel.
    pub channel: ChannelName,
    /// What happened.
    pub event: crate::cluster::envelope::ChannelEvent,
}

/// A stored publication of a channel with cluster-wide history, arriving from NATS.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StoredIn {
    /// The channel.
    pub channel: ChannelName,
    /// The stored message.
    pub message: crate::cluster::history::StoredMessage,
}

/// Switches the registry to cluster mode: publications and join/leave go through this bridge,
/// and history of history-enabled namespaces lives in the cluster-wide store when there is one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachBridge {
    /// The node's NATS bridge.
    pub bridge: Addr<crate::cluster::NatsBridge>,
    /// Cluster-wide history (JetStream); `None` keeps history per node.
    pub history: Option<std::sync::Arc<crate::cluster::history::HistoryStore>>,
}

/// The NATS connection came back after a loss: live publications of that time may be missing,
/// so every channel with cluster-wide history checks its position now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BrokerReconnected;

/// How many connections a user has on this node.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct UserConnections {
    /// The user.
    pub user: std::sync::Arc<str>,
}
