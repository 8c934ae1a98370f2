//! One [`Channel`] actor per active channel on this node: its local subscribers, its history
//! stream (memory engine) or its recent publications (history on JetStream), and fan-out of
//! pre-encoded frames. Also the node-wide [`ChannelRules`] (names, namespaces, permissions).

mod actor;
pub mod history;
pub mod messages;
pub mod recent;
pub mod rules;

pub use actor::Channel;

/// How long a publish idempotency key is remembered (Centrifugo: 300 s).
pub const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);
pub use rules::{Action, Asker, ChannelRules, DataFormat, HistoryShape, Namespace, ResolvedChannel};
