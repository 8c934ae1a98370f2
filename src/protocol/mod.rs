//! Centrifugo client protocol v2, JSON encoding: wire shapes only — no actix, no IO.
//!
//! * [`command`]: what clients send (one [`command::Command`] per line of a frame).
//! * [`reply`]: results, pushes and the reply envelope, encoded compactly with Centrifugo's
//!   omit-empty rules (protocol-client.md §2–§4).
//! * [`codes`]: the error (100–113) and disconnect (3000–3999) code tables.
//! * [`frame`]: splitting incoming frames into lines.

pub mod codes;
pub mod command;
pub mod frame;
pub mod reply;

pub use codes::{Disconnect, ReplyError};
