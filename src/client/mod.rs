//! One [`ClientSession`] actor per WebSocket connection: the Centrifugo client protocol state
//! machine (connect, subscriptions, pings, token expiry), fed by frames from the socket and by
//! [`messages::Deliver`] from channels and the registry.
//!
//! * [`session`]: the actor shell — lifecycle, frames in and out, timers.
//! * [`outbox`]: the ordered, byte-budgeted queue channels and the registry feed a session by.
//! * [`commands`]: one method per protocol command.
//! * [`ws`]: the HTTP route that checks the origin and upgrades to a session.

mod commands;
pub mod messages;
pub mod outbox;
mod session;
pub mod ws;

pub use session::ClientSession;
