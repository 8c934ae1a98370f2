//! What every connection and API handler shares: immutable settings, compiled channel rules,
//! the token verifier, and the registry's address.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix::Addr;

use crate::auth::TokenVerifier;
use crate::channel::ChannelRules;
use crate::config::Settings;
use crate::registry::Registry;

/// gyre's version, reported to clients and in `info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Shared, read-only node context (plus the draining flag).
pub struct Node {
    /// The loaded configuration.
    pub settings: Settings,
    /// Channel names, namespaces and permissions.
    pub rules: ChannelRules,
    /// JWT verification.
    pub verifier: TokenVerifier,
    /// The channel registry.
    pub registry: Addr<Registry>,
    /// Unique id of this node process.
    pub uid: String,
    /// Human-readable node name (`node.name` or `<hostname>_<port>`).
    pub name: String,
    /// When the node started.
    pub started: Instant,
    draining: AtomicBool,
}

impl Node {
    /// Builds the shared context.
    pub fn new(
        settings: Settings,
        rules: ChannelRules,
        verifier: TokenVerifier,
        registry: Addr<Registry>,
        name: String,
    ) -> Self {
        Self {
            settings,
            rules,
            verifier,
            registry,
            uid: uuid::Uuid::new_v4().to_string(),
            name,
            started: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    /// The node is shutting down: refuse new connections.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Enter draining mode.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}
