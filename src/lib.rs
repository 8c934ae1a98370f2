//! gyre: a real-time messaging node that is a drop-in replacement for Centrifugo v6 — same
//! client protocol (official SDKs over WebSocket with the same JWTs), same server HTTP API, same
//! config file.
//!
//! # Architecture
//!
//! Every client connection, every channel and every presence set is an actix actor. They
//! exchange typed messages with one channel registry actor per node:
//!
//! ```text
//!                 ┌──────────── owns / starts ────────────┐
//!   Registry ─────┤                                        │
//!     ▲   ▲       ▼                                        ▼
//!     │   │   Channel(name) ──try_send Deliver──▶ ClientSession*     Presence(name)
//!     │   │                                            │
//!     │   └───── do_send Subscribe / send Publish ─────┘   (client → registry)
//!     │
//!     └──── HTTP API handlers (publish, broadcast, history, presence, info)
//! ```
//!
//! * Downward sends (registry → channel → client) never wait: a channel builds each push's
//!   WebSocket frame (header included) once per protocol and form (plain, fossil delta full or
//!   patch) and hands the same bytes to every subscriber's outbox, within a per-client byte
//!   budget; a client over budget is disconnected with 3008 "slow" without slowing anyone else.
//! * Payloads are opaque bytes (`domain::Payload`) everywhere inside; only the JSON encoding
//!   looks at them (a binary payload closes a JSON connection with 3506, as in Centrifugo).
//! * Request/response runs only upward (session or API → registry → channel/presence).
//! * A subscribe's answer travels through the same mailbox as the channel's publications, so
//!   the subscribe reply always precedes that channel's pushes and recovery has no gap.
//! * Threads: one HTTP worker per CPU the process may use (`http_server.workers`), each owning
//!   the sessions of the connections it accepted; the registry and the channel and presence
//!   actors it starts live on the system thread — or, with a single worker (a one-CPU pod, a
//!   process pinned to a core), on that worker's thread, so a publish crosses no thread.
//! * A WebSocket leaves actix-http's HTTP/1 dispatcher at the upgrade: the connection's task
//!   runs the session actor's future, decodes the client's frames itself (limits checked at each
//!   header; permessage-deflate) and writes what the session hands over, so an idle connection
//!   holds no I/O buffer; one ping wheel per thread replaces per-connection timers. Over TLS
//!   the same driver goes through rustls (`socket::SocketIo`).
//! * The session does not know its transport: it takes decoded messages (`ws_frames::Inbound`
//!   from a WebSocket, posted commands from `/emulation`) and hands wire frames to a `Flow`,
//!   which the WebSocket writer or an HTTP response body drains.
//! * The same session actor serves the HTTP transports: its frames become a streamed response
//!   body (SSE events, JSON lines or Protobuf) for the emulated (`http_stream`, `sse`, commands
//!   through `/emulation`, relayed over NATS to the session's node) and unidirectional
//!   (`uni_websocket`, `uni_sse`, `uni_http_stream`) transports.
//! * A channel with no subscriber on this node has no actor: the registry keeps its history
//!   (memory engine) and then its stream position as plain data, so a broadcast to a million
//!   channels costs hundreds of bytes per channel, not an actor each.
//!
//! # Layout
//!
//! * [`protocol`]: client protocol wire types and the code tables (no actix).
//! * [`domain`]: identifiers, payloads, publications, client info, stream positions.
//! * [`auth`]: JWT verification with Centrifugo's semantics.
//! * [`client`]: the per-connection session actor, the WebSocket handshake and socket I/O, the
//!   HTTP transports.
//! * [`channel`]: the channel actor, its history stream, channel-name rules and permissions.
//! * [`presence`]: the per-channel presence actor.
//! * [`registry`]: the channel registry actor, and what it keeps of channels without an actor.
//! * [`cluster`]: the NATS bridge actor relaying channel traffic and control between nodes.
//! * [`api`]: the server HTTP API; [`admin`]: the admin endpoints (login, admin API).
//! * [`proxy`]: backend proxies (connect, refresh, subscribe, publish, RPC, sub_refresh) over
//!   HTTP and gRPC; sessions spawn their calls and take the answers as messages.
//! * [`config`]: settings with Centrifugo v6 (and v5) keys; [`tls`]: the listeners'
//!   certificates, checked at start, as rustls and tonic server configs.
//! * [`app`], [`node`], [`shutdown`], [`telemetry`]: wiring, shared context, graceful shutdown,
//!   logging.

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod channel;
pub mod client;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod node;
pub mod presence;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
