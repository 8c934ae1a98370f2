//! Cross-node relay over NATS (`broker: {enabled: true, type: "nats"}`).
//!
//! One [`NatsBridge`] actor per node:
//! * subscribes to the subject of every channel this node has a channel actor for, and feeds what
//!   arrives (publications, join, leave) to the [`crate::registry::Registry`];
//! * publishes this node's publications and join/leave — in cluster mode every delivery, even to
//!   this node's own subscribers, comes back through NATS, so all nodes see one order;
//! * carries control messages: API disconnect/unsubscribe/subscribe/refresh for users on other
//!   nodes, node heartbeats (every 3 s; peers silent for 7 s are forgotten) for `info`, and
//!   surveys for `channels` and `presence`.
//!
//! What crosses the wire is [`envelope`] (versioned JSON); subject names are in [`subjects`].
//! Delivery over core NATS is at most once, as with Centrifugo's NATS broker.

mod bridge;
pub mod envelope;
pub mod history;
pub mod idempotency;
pub mod lossless;
pub mod subjects;

pub use bridge::{
    connect, ClusterError, GetNodes, LeaveCluster, NatsBridge, PublishToChannel, RelayEmulation, SendControl, Survey,
    UnwatchChannel, WatchChannel,
};
