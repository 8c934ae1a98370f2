//! One [`ClientSession`] actor per connection (WebSocket, or an HTTP stream): the Centrifugo client protocol state
//! machine (connect, subscriptions, pings, token expiry), fed by frames from the socket and by
//! [`messages::Deliver`] from channels and the registry.
//!
//! * [`session`]: the actor shell — lifecycle, frames in and out, timers.
//! * [`outbox`]: the ordered, byte-budgeted queue channels and the registry feed a session by.
//! * [`commands`]: one method per protocol command.
//! * [`pings`]: one timer per thread pings every session (no per-connection timers).
//! * [`grpc`]: the unidirectional gRPC stream (`uni_grpc`, tonic, a port of its own).
//! * [`ws`]: the WebSocket handshake (path, limits, origin) that starts a session.
//! * [`transport`]: the upgraded socket's reads and writes, outside the HTTP/1 dispatcher.
//! * [`ws_frames`]: the client's WebSocket frames decoded as its bytes arrive (limits checked at
//!   each header), and permessage-deflate.

mod commands;
pub mod grpc;
pub mod http;
pub mod messages;
pub mod outbox;
mod pings;
mod rate_limit;
mod session;
mod transport;
pub mod ws;
pub mod ws_frames;

pub use session::ClientSession;
