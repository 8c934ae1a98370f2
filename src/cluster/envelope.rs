//! The one versioned message format that crosses nodes (JSON, `"v": 1`).
//!
//! Channel traffic ([`ChannelMessage`]) travels on the channel's subject; control traffic
//! ([`ControlMessage`]) on the control and node subjects. A node ignores control messages it sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lossless;
use crate::domain::{ClientInfo, Payload, Publication};

/// Current envelope version; messages with another version are dropped with a warning.
pub const VERSION: u8 = 1;

/// Traffic of one channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// Envelope version.
    pub v: u8,
    /// The channel.
    pub channel: String,
    /// What happened.
    pub event: ChannelEvent,
}

/// What happened in a channel. Externally tagged (`{"publication": {...}}`): internally tagged
/// enums buffer their content, which loses raw JSON payloads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelEvent {
    /// A publication.
    Publication {
        /// The publication.
        #[serde(with = "lossless::publication")]
        publication: Publication,
        /// Not kept in history.
        #[serde(default)]
        skip_history: bool,
    },
    /// A client subscribed (join push).
    Join {
        /// Who.
        #[serde(with = "lossless::client_info")]
        info: ClientInfo,
    },
    /// A client left (leave push).
    Leave {
        /// Who.
        #[serde(with = "lossless::client_info")]
        info: ClientInfo,
    },
}

/// A control message between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlMessage {
    /// Envelope version.
    pub v: u8,
    /// Sender node uid.
    pub from: String,
    /// What to do.
    pub command: ControlCommand,
}

/// Which connections a user-targeted command applies to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserTarget {
    /// User id.
    pub user: String,
    /// Only this connection.
    #[serde(default)]
    pub client: String,
    /// Only this session.
    #[serde(default)]
    pub session: String,
}

/// Per-subscription overrides carried by a remote subscribe.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Overrides {
    /// `presence`.
    pub presence: Option<bool>,
    /// `join_leave`.
    pub join_leave: Option<bool>,
    /// `force_push_join_leave`.
    pub force_push_join_leave: Option<bool>,
    /// `force_positioning`.
    pub force_positioning: Option<bool>,
    /// `force_recovery`.
    pub force_recovery: Option<bool>,
}

/// Node status, broadcast every few seconds (the `info` API lists them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node uid.
    pub uid: String,
    /// Node name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Connections.
    pub num_clients: usize,
    /// Distinct users.
    pub num_users: usize,
    /// Channels with subscribers.
    pub num_channels: usize,
    /// Subscriptions.
    pub num_subs: usize,
    /// Seconds since start.
    pub uptime: u64,
}

/// Control commands (Centrifugo's controlpb commands, in JSON; externally tagged).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlCommand {
    /// Heartbeat with node status.
    Node(NodeInfo),
    /// The sender is shutting down: forget it now.
    Shutdown,
    /// Commands for an emulated session on the receiving node (an `/emulation` request that
    /// reached another node).
    Emulation {
        /// Session id.
        session: String,
        /// The commands (JSON lines or delimited Protobuf).
        #[serde(with = "lossless::payload")]
        data: Payload,
    },
    /// Disconnect a user's connections.
    Disconnect {
        /// Target.
        target: UserTarget,
        /// Client ids to spare.
        #[serde(default)]
        whitelist: Vec<String>,
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Unsubscribe a user's connections from a channel.
    Unsubscribe {
        /// Target.
        target: UserTarget,
        /// Channel.
        channel: String,
    },
    /// Subscribe a user's connections to a channel (server-side).
    Subscribe {
        /// Target.
        target: UserTarget,
        /// Channel.
        channel: String,
        /// Channel info.
        #[serde(default, with = "lossless::optional_payload")]
        info: Option<Payload>,
        /// Subscribe push data.
        #[serde(default, with = "lossless::optional_payload")]
        data: Option<Payload>,
        /// Recover from this offset/epoch.
        #[serde(default)]
        recover_since: Option<(u64, String)>,
        /// Subscription expiry (Unix s).
        #[serde(default)]
        expire_at: Option<i64>,
        /// Option overrides.
        #[serde(default)]
        overrides: Overrides,
    },
    /// Refresh a user's connections.
    Refresh {
        /// Target.
        target: UserTarget,
        /// Close now with 3005.
        expired: bool,
        /// New expiry.
        #[serde(default)]
        expire_at: Option<i64>,
        /// New connection info.
        #[serde(default, with = "lossless::optional_payload")]
        info: Option<Payload>,
    },
    /// Asks every node for data; answers go to the requester's node subject.
    Survey {
        /// Correlation id.
        id: u64,
        /// The question.
        query: SurveyQuery,
    },
    /// An answer to a survey.
    SurveyReply {
        /// Correlation id.
        id: u64,
        /// The answer.
        answer: SurveyAnswer,
    },
}

/// Questions a survey can ask.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SurveyQuery {
    /// Active channels matching a glob (empty = all).
    Channels {
        /// Pattern.
        pattern: String,
    },
    /// Presence of a channel.
    Presence {
        /// Channel.
        channel: String,
    },
}

/// Answers to [`SurveyQuery`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SurveyAnswer {
    /// Channel → local subscriber count.
    #[serde(default)]
    pub channels: BTreeMap<String, usize>,
    /// Client id → info.
    #[serde(default, with = "lossless::client_info_map")]
    pub presence: BTreeMap<String, ClientInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages_round_trip_with_raw_data_intact() {
        let json =
            r#"{"v":1,"channel":"chat:x","event":{"publication":{"publication":{"data":{"a": [1,2]},"offset":0}}}}"#;
        let message: ChannelMessage = serde_json::from_str(json).unwrap();
        let ChannelEvent::Publication { publication, .. } = &message.event else { panic!("not a publication") };
        assert_eq!(publication.data.as_bytes(), br#"{"a": [1,2]}"#);
        let again = serde_json::to_string(&message).unwrap();
        assert!(again.contains(r#""data":{"a": [1,2]}"#));
    }

    #[test]
    fn remote_subscribe_keeps_raw_info() {
        let json =
            r#"{"v":1,"from":"n","command":{"subscribe":{"target":{"user":"u"},"channel":"c","info":{"k": 1}}}}"#;
        let message: ControlMessage = serde_json::from_str(json).unwrap();
        let ControlCommand::Subscribe { info: Some(info), .. } = message.command else { panic!("not a subscribe") };
        assert_eq!(info.as_bytes(), br#"{"k": 1}"#);
    }

    #[test]
    fn control_commands_are_tagged() {
        let message = ControlMessage {
            v: VERSION,
            from: "n1".into(),
            command: ControlCommand::Disconnect {
                target: UserTarget { user: "42".into(), ..Default::default() },
                whitelist: vec![],
                code: 3503,
                reason: "force disconnect".into(),
            },
        };
        let json = serde_json::to_string(&message).unwrap();
        assert!(json.contains(r#""command":{"disconnect":"#));
        let back: ControlMessage = serde_json::from_str(&json).unwrap();
        assert!(matches!(back.command, ControlCommand::Disconnect { code: 3503, .. }));
    }
}
