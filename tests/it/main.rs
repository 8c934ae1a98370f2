//! The single integration-test binary: a real node on 127.0.0.1:0, raw WebSocket clients and
//! HTTP API calls. SDK compatibility (real JS/Python packages) lives under `tests/sdk/`.

mod support;

/// The admin endpoints (login, admin API).
mod admin;
/// Server HTTP API.
mod api;
/// Malformed and hostile input on every path: codes, and everyone else keeps working.
mod bad_input;
/// Cache recovery mode.
mod cache_recovery;
/// Connect, subscribe, publish, pushes: the happy paths and their exact wire shapes.
mod client_protocol;
/// Several nodes relaying through a real nats-server.
mod cluster;
/// History and recovery shared through JetStream.
mod cluster_history;
/// Bounded JetStream history reads and the per-channel cache of recent publications.
mod cluster_history_reads;
/// Fossil delta compression.
mod delta;
/// The server gRPC API (`CentrifugoApi`).
mod grpc_api;
/// JWKS: keys fetched from an identity provider's key set, by kid, with rotation.
mod jwks;
/// Resource limits: command rate limits, channels per node.
mod limits;
/// Health, metrics, internal port.
mod ops;
/// Binary payloads end to end and `publication_data_format`.
mod payloads;
/// Presence, join/leave.
mod presence;
/// The Protobuf protocol: framing, replies, pushes, and malformed frames.
mod protobuf;
/// Backend proxies over HTTP: requests, answers, failures.
mod proxy;
/// History, positioning and recovery.
mod recovery;
/// Pings, stale connections, token expiry and refresh.
mod timers;
/// TLS on the listeners: wss, https, mutual TLS, gRPC over TLS.
mod tls;
/// The unidirectional WebSocket transport.
mod uni;
/// Publication versions.
mod versions;
/// WebSocket framing (RFC 6455) and per-connection input limits.
mod websocket;
