//! One [`ClientSession`] actor per connection, whatever carries it: the Centrifugo client
//! protocol state machine (connect, subscriptions, pings, token expiry), fed by decoded input
//! from its transport and by [`messages::Deliver`] from channels and the registry.
//!
//! * [`session`]: the actor shell — lifecycle, input in, frames out, timers.
//! * [`commands`]: one method per protocol command.
//! * [`outbox`]: the ordered, byte-budgeted queue channels and the registry feed a session by.
//! * [`pings`]: one timer per thread pings every session (no per-connection timers).
//! * [`rate_limit`]: per-connection command rate limits.
//! * [`transport`]: the narrow interface between a session and its connection
//!   ([`transport::Flow`]), and the transports: WebSocket, HTTP streams (emulated and
//!   unidirectional), the unidirectional gRPC stream.

mod commands;
pub mod messages;
pub mod outbox;
mod pings;
mod rate_limit;
mod session;
pub mod transport;

pub use session::ClientSession;
