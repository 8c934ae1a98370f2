//! Centrifugo client protocol v2 in its two encodings, JSON and Protobuf: wire shapes only — no
//! actix, no IO.
//!
//! * [`command`]: what clients send (one [`command::Command`] per line of a frame).
//! * [`protobuf`]: the Protobuf encoding of the same commands, replies and pushes.
//! * [`outgoing`]: replies and pushes encoded for a connection's protocol, joined into frames.
//! * [`reply`]: results, pushes and the reply envelope, encoded compactly with Centrifugo's
//!   omit-empty rules (protocol-client.md §2–§4).
//! * [`codes`]: the error (100–113) and disconnect (3000–3999) code tables.
//! * [`frame`]: taking the commands out of incoming frames, one at a time.
//! * [`fossil`]: fossil delta patches for publications of delta subscriptions.

pub mod codes;
pub mod command;
pub mod fossil;
pub mod frame;
pub mod outgoing;
pub mod protobuf;
pub mod reply;

pub use codes::{Disconnect, ReplyError};
pub use outgoing::{Frame, Protocol};
