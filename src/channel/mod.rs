//! One [`Channel`] actor per active channel on this node: its local subscribers, its history
//! stream (memory engine), and fan-out of pre-encoded frames. Also the node-wide
//! [`ChannelRules`] (names, namespaces, permissions).

mod actor;
pub mod history;
pub mod messages;
pub mod rules;

pub use actor::Channel;
pub use rules::{Action, Asker, ChannelRules, Namespace, ResolvedChannel};
