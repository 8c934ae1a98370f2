//! `client.rate_limit`: per-connection command rate limits, in Centrifugo PRO's shape
//! (`client.rate_limit.client_command`). Token buckets: `rate` commands per `interval`, refilled
//! continuously; a command over any of its buckets is answered with error 111.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `client.rate_limit.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Limits on the commands of each connection.
    pub client_command: ClientCommandLimits,
}

/// `client.rate_limit.client_command.*`: `total` counts every command after `connect`; a
/// command with its own enabled set uses it, others use `default`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientCommandLimits {
    /// Master switch.
    pub enabled: bool,
    /// Every command counts here (when enabled).
    pub total: Buckets,
    /// Commands without an enabled set of their own.
    pub default: Buckets,
    /// `subscribe`.
    pub subscribe: Buckets,
    /// `publish`.
    pub publish: Buckets,
    /// `history`.
    pub history: Buckets,
    /// `presence`.
    pub presence: Buckets,
    /// `presence_stats`.
    pub presence_stats: Buckets,
    /// `refresh`.
    pub refresh: Buckets,
    /// `sub_refresh`.
    pub sub_refresh: Buckets,
    /// `rpc`, with per-method overrides.
    pub rpc: RpcBuckets,
}

/// A set of token buckets; a command passes when every bucket has a token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Buckets {
    /// Whether this set applies.
    pub enabled: bool,
    /// The buckets.
    pub buckets: Vec<Bucket>,
}

/// `rate` commands per `interval`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bucket {
    /// The refill period.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Commands allowed per interval (also the burst).
    pub rate: u32,
}

/// The `rpc` set, and sets for single methods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcBuckets {
    /// Whether the `rpc` set applies.
    pub enabled: bool,
    /// The buckets of every RPC without an override.
    pub buckets: Vec<Bucket>,
    /// Sets for single methods.
    pub method_overrides: Vec<MethodBuckets>,
}

/// One RPC method's set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MethodBuckets {
    /// The RPC method.
    pub method: String,
    /// Whether this set applies.
    pub enabled: bool,
    /// Its buckets.
    pub buckets: Vec<Bucket>,
}

impl ClientCommandLimits {
    /// Every set with its config path, for validation.
    pub fn sets(&self) -> Vec<(String, bool, &[Bucket])> {
        let base = "client.rate_limit.client_command";
        let named = [
            ("total", &self.total),
            ("default", &self.default),
            ("subscribe", &self.subscribe),
            ("publish", &self.publish),
            ("history", &self.history),
            ("presence", &self.presence),
            ("presence_stats", &self.presence_stats),
            ("refresh", &self.refresh),
            ("sub_refresh", &self.sub_refresh),
        ];
        let mut sets: Vec<_> =
            named.into_iter().map(|(n, b)| (format!("{base}.{n}"), b.enabled, b.buckets.as_slice())).collect();
        sets.push((format!("{base}.rpc"), self.rpc.enabled, &self.rpc.buckets));
        for (i, o) in self.rpc.method_overrides.iter().enumerate() {
            sets.push((format!("{base}.rpc.method_overrides[{i}]"), o.enabled, &o.buckets));
        }
        sets
    }
}
