//! The client session's inbox: what channels and the registry send down to a connection.
//! Downward sends never wait: they go through the session's [`Outbox`], which also keeps the
//! byte budget.

use std::sync::Arc;

pub use super::outbox::Outbox;
use crate::channel::history::Recovery;
use crate::channel::ResolvedChannel;
use crate::domain::{ChannelName, ClientId, Payload, StreamPosition};
use crate::protocol::{Disconnect, Frame, Protocol, ReplyError};

/// Commands for an emulated session (HTTP-streaming or SSE) that arrived through `/emulation`:
/// JSON command lines or delimited Protobuf commands, as a WebSocket frame would carry them.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct EmulatedCommands(pub bytes::Bytes);

/// The emulated sessions (HTTP-streaming, SSE) on this node by session id: `/emulation`
/// requests, and those other nodes relay here, find their session through it.
#[derive(Default)]
pub struct EmulatedSessions {
    sessions: std::sync::Mutex<std::collections::HashMap<String, actix::Recipient<EmulatedCommands>>>,
}

impl EmulatedSessions {
    /// Registers a session.
    pub fn add(&self, session: &str, recipient: actix::Recipient<EmulatedCommands>) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(session.to_owned(), recipient);
        }
    }

    /// Forgets a session.
    pub fn remove(&self, session: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(session);
        }
    }

    /// Hands `commands` to the session; false when it is not on this node (any more).
    pub fn deliver(&self, session: &str, commands: bytes::Bytes) -> bool {
        let recipient = self.sessions.lock().ok().and_then(|sessions| sessions.get(session).cloned());
        match recipient {
            Some(recipient) => {
                recipient.do_send(EmulatedCommands(commands));
                true
            }
            None => false,
        }
    }
}

/// Something for one connection, queued in its [`Outbox`].
#[derive(Debug)]
pub enum Deliver {
    /// A pre-encoded push (pub/join/leave), shared by every subscriber of one protocol: a
    /// publication is encoded once per channel and protocol, not per client. Counts against the
    /// byte budget while queued.
    Frame(Frame),
    /// The channel's answer to a subscribe; always precedes that channel's frames. Boxed, like
    /// every rare variant, so the per-delivery `Frame` message stays small.
    Subscribed(Box<SubscribeAnswer>),
    /// The server ends this subscription (`unsubscribe` push).
    Unsubscribe {
        /// The channel.
        channel: ChannelName,
        /// Unsubscribe code (2000..2999).
        code: u32,
        /// Reason.
        reason: &'static str,
    },
    /// Close the connection with this code.
    Disconnect(Disconnect),
    /// Server API action on this connection (subscribe, refresh).
    Server(Box<ServerAction>),
    /// Time for a server ping (from the thread's ping wheel).
    Ping,
    /// The pong to the last ping is due now: 3012 if it has not arrived.
    PongDeadline,
}

/// A channel's answer to a subscribe.
#[derive(Debug)]
pub struct SubscribeAnswer {
    /// The channel.
    pub channel: ChannelName,
    /// Position and recovered publications, or why it failed.
    pub outcome: Result<Subscribed, ReplyError>,
}

/// What the server API asks of a live connection.
#[derive(Debug)]
pub enum ServerAction {
    /// Subscribe the connection server-side (`subscribe` push follows).
    Subscribe(ServerSubscribe),
    /// Replace the connection's expiry (`expired` closes it with 3005) and, optionally, its info.
    Refresh {
        /// Close now with 3005.
        expired: bool,
        /// New expiry (Unix s); `None` = never expires.
        expire_at: Option<i64>,
        /// New connection info.
        info: Option<Payload>,
    },
}

/// A server-side subscription requested through the API.
#[derive(Debug, Clone)]
pub struct ServerSubscribe {
    /// The channel.
    pub channel: ResolvedChannel,
    /// Channel info for presence and join/leave.
    pub info: Option<Payload>,
    /// Data sent with the `subscribe` push.
    pub data: Option<Payload>,
    /// Recover from this position.
    pub recover_since: Option<StreamPosition>,
    /// Subscription expiry (Unix s).
    pub expire_at: Option<i64>,
    /// Per-subscription overrides of the namespace options.
    pub overrides: SubscribeOverrides,
}

/// `override` of the API subscribe and the `subs` claim: each `Some` replaces the namespace value.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscribeOverrides {
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

/// A successful subscribe, as seen by the channel.
#[derive(Debug, Clone, Default)]
pub struct Subscribed {
    /// Current top of the stream (when the channel keeps history).
    pub position: Option<StreamPosition>,
    /// Recovery outcome when the client asked to recover.
    pub recovery: Option<Recovery>,
}

/// How channels and the registry reach one connection: its [`Outbox`].
#[derive(Debug, Clone)]
pub struct ClientHandle {
    /// The connection id.
    pub id: ClientId,
    /// The encoding its frames must be in.
    pub protocol: Protocol,
    outbox: Arc<Outbox>,
}

/// Why a frame could not be handed to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverError {
    /// Its queue is over the byte budget: disconnect it as slow.
    Slow,
    /// The connection is gone.
    Gone,
}

impl ClientHandle {
    /// A handle for the session reading `outbox`.
    pub fn new(id: ClientId, outbox: Arc<Outbox>, protocol: Protocol) -> Self {
        Self { id, protocol, outbox }
    }

    /// Queues a shared frame without waiting, within the client's byte budget.
    pub fn deliver_frame(&self, frame: &Frame, budget: usize) -> Result<(), DeliverError> {
        self.outbox.push_frame(frame, budget)
    }

    /// Sends a control message (subscribe outcome, unsubscribe, disconnect); these are rare
    /// and must not be dropped, so they bypass the byte budget. They share the frames' queue,
    /// so a subscribe answer reaches the client before any frame of that channel.
    pub fn send(&self, message: Deliver) {
        self.outbox.push_control(message);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_per_delivery_message_stays_small() {
        // Every queued frame takes a slot of the largest variant's size; keep rare ones boxed.
        assert!(std::mem::size_of::<super::Deliver>() <= 48, "{}", std::mem::size_of::<super::Deliver>());
    }
}
