//! What every connection and API handler shares: immutable settings, compiled channel rules,
//! the token verifier, and the registry's address.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::Addr;

use crate::auth::TokenVerifier;
use crate::channel::ChannelRules;
use crate::client::messages::EmulatedSessions;
use crate::cluster::NatsBridge;
use crate::config::Settings;
use crate::registry::Registry;

/// gyre's version, reported to clients and in `info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a [`Node`] is built from.
pub struct NodeParts {
    /// The loaded configuration.
    pub settings: Settings,
    /// Compiled channel rules.
    pub rules: Arc<ChannelRules>,
    /// JWT verification.
    pub verifier: TokenVerifier,
    /// The started registry.
    pub registry: Addr<Registry>,
    /// The started NATS bridge (cluster mode).
    pub cluster: Option<Addr<NatsBridge>>,
    /// Node uid.
    pub uid: String,
    /// Node name.
    pub name: String,
    /// Emulated sessions (shared with the NATS bridge, which relays `/emulation` requests).
    pub emulated: Arc<EmulatedSessions>,
}

/// Shared, read-only node context (plus the draining flag).
pub struct Node {
    /// The loaded configuration.
    pub settings: Settings,
    /// Channel names, namespaces and permissions.
    pub rules: Arc<ChannelRules>,
    /// JWT verification.
    pub verifier: TokenVerifier,
    /// The channel registry.
    pub registry: Addr<Registry>,
    /// The NATS bridge, in cluster mode.
    pub cluster: Option<Addr<NatsBridge>>,
    /// Unique id of this node process.
    pub uid: String,
    /// Human-readable node name (`node.name` or `<hostname>_<port>`).
    pub name: String,
    /// When the node started.
    pub started: Instant,
    draining: AtomicBool,
    /// Open WebSocket connections (for `client.connection_limit`).
    connections: AtomicUsize,
    /// Fixed one-second window for `client.connection_rate_limit`: (second, count).
    rate_window: Mutex<(u64, usize)>,
    /// Emulated sessions (HTTP-streaming, SSE) on this node, for `/emulation`.
    pub emulated: Arc<EmulatedSessions>,
    /// The backend proxies the configuration uses.
    pub proxies: crate::proxy::Proxies,
    /// Failed admin logins by address.
    pub admin_logins: crate::admin::LoginThrottle,
}

impl Node {
    /// Builds the shared context.
    pub fn new(parts: NodeParts) -> Self {
        let NodeParts { settings, rules, verifier, registry, cluster, uid, name, emulated } = parts;
        Self {
            rules,
            verifier,
            registry,
            cluster,
            uid,
            name,
            started: Instant::now(),
            draining: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            rate_window: Mutex::new((0, 0)),
            emulated,
            proxies: crate::proxy::Proxies::new(&settings),
            admin_logins: crate::admin::LoginThrottle::default(),
            settings,
        }
    }

    /// The node is shutting down: refuse new connections.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Admits a new connection under `client.connection_limit` and
    /// `client.connection_rate_limit`; refused upgrades get 503 so SDKs back off.
    pub fn admit_connection(&self) -> bool {
        let client = &self.settings.client;
        if client.connection_limit > 0 && self.connections.load(Ordering::Relaxed) >= client.connection_limit {
            return false;
        }
        if client.connection_rate_limit > 0 {
            let second = self.started.elapsed().as_secs();
            let mut window = self.rate_window.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if window.0 != second {
                *window = (second, 0);
            }
            if window.1 >= client.connection_rate_limit {
                return false;
            }
            window.1 += 1;
        }
        true
    }

    /// A connection opened.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Enter draining mode.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}
