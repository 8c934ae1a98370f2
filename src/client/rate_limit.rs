//! Per-connection command rate limits (`client.rate_limit.client_command`, Centrifugo PRO's
//! shape): token buckets kept per command kind, created on first use, so a connection of a node
//! without limits carries nothing.

use std::collections::HashMap;
use std::time::Instant;

use crate::config::rate_limit::{Bucket, ClientCommandLimits};

/// Which set of buckets a command counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Total,
    Default,
    Command(&'static str),
    /// An RPC method with an override (its index in `method_overrides`).
    Method(usize),
}

/// A bucket's state: tokens left (at most `rate`) as of `at`.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    left: f64,
    at: Instant,
}

impl Tokens {
    fn full(bucket: &Bucket, now: Instant) -> Self {
        Self { left: f64::from(bucket.rate), at: now }
    }

    fn refill(&mut self, bucket: &Bucket, now: Instant) {
        let per_second = f64::from(bucket.rate) / bucket.interval.as_secs_f64().max(f64::MIN_POSITIVE);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.left = (self.left + elapsed * per_second).min(f64::from(bucket.rate));
        self.at = now;
    }
}

/// The buckets of one connection.
#[derive(Debug, Default)]
pub(super) struct CommandLimiter {
    sets: HashMap<Key, Vec<Tokens>>,
}

impl CommandLimiter {
    /// Whether `command` (`rpc_method` for an RPC) may run now; if so, it takes a token from
    /// every bucket it counts against, else none is taken.
    pub fn allow(
        &mut self,
        limits: &ClientCommandLimits,
        command: &'static str,
        rpc_method: Option<&str>,
        now: Instant,
    ) -> bool {
        let mut applicable: Vec<(Key, &[Bucket])> = Vec::with_capacity(2);
        if limits.total.enabled {
            applicable.push((Key::Total, &limits.total.buckets));
        }
        if let Some(own) = own_set(limits, command, rpc_method) {
            applicable.push(own);
        }
        for (key, buckets) in &applicable {
            let tokens =
                self.sets.entry(*key).or_insert_with(|| buckets.iter().map(|b| Tokens::full(b, now)).collect());
            for (state, bucket) in tokens.iter_mut().zip(buckets.iter()) {
                state.refill(bucket, now);
                if state.left < 1.0 {
                    return false;
                }
            }
        }
        for (key, _) in &applicable {
            for state in self.sets.get_mut(key).into_iter().flatten() {
                state.left -= 1.0;
            }
        }
        true
    }
}

/// The set a command counts against besides `total`: its own when enabled, else `default`
/// (commands Centrifugo does not limit one by one, such as `unsubscribe`, count in `total` only).
fn own_set<'a>(
    limits: &'a ClientCommandLimits,
    command: &'static str,
    rpc_method: Option<&str>,
) -> Option<(Key, &'a [Bucket])> {
    let own = match command {
        "subscribe" => &limits.subscribe,
        "publish" => &limits.publish,
        "history" => &limits.history,
        "presence" => &limits.presence,
        "presence_stats" => &limits.presence_stats,
        "refresh" => &limits.refresh,
        "sub_refresh" => &limits.sub_refresh,
        "rpc" => {
            let method = rpc_method.unwrap_or_default();
            let overrides = &limits.rpc.method_overrides;
            if let Some(i) = overrides.iter().position(|o| o.enabled && o.method == method) {
                return Some((Key::Method(i), &overrides[i].buckets));
            }
            if limits.rpc.enabled {
                return Some((Key::Command("rpc"), &limits.rpc.buckets));
            }
            return limits.default.enabled.then_some((Key::Default, limits.default.buckets.as_slice()));
        }
        _ => return None,
    };
    if own.enabled {
        Some((Key::Command(command), &own.buckets))
    } else {
        limits.default.enabled.then_some((Key::Default, limits.default.buckets.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::rate_limit::{Buckets, MethodBuckets};

    fn set(rate: u32, interval_ms: u64) -> Buckets {
        Buckets { enabled: true, buckets: vec![Bucket { interval: Duration::from_millis(interval_ms), rate }] }
    }

    #[test]
    fn a_command_over_its_bucket_is_refused_until_tokens_refill() {
        let limits = ClientCommandLimits { enabled: true, history: set(2, 1000), ..Default::default() };
        let mut limiter = CommandLimiter::default();
        let now = Instant::now();
        assert!(limiter.allow(&limits, "history", None, now));
        assert!(limiter.allow(&limits, "history", None, now));
        assert!(!limiter.allow(&limits, "history", None, now));
        assert!(limiter.allow(&limits, "presence", None, now), "no set for presence, no default");
        assert!(limiter.allow(&limits, "history", None, now + Duration::from_millis(500)), "one token back");
        assert!(!limiter.allow(&limits, "history", None, now + Duration::from_millis(500)));
    }

    #[test]
    fn total_counts_every_command_and_default_covers_commands_without_a_set() {
        let limits =
            ClientCommandLimits { enabled: true, total: set(3, 1000), default: set(1, 1000), ..Default::default() };
        let mut limiter = CommandLimiter::default();
        let now = Instant::now();
        assert!(limiter.allow(&limits, "history", None, now));
        assert!(!limiter.allow(&limits, "history", None, now), "default: one per second");
        assert!(limiter.allow(&limits, "unsubscribe", None, now), "total only");
        assert!(limiter.allow(&limits, "ping", None, now));
        assert!(!limiter.allow(&limits, "unsubscribe", None, now), "total used up");
    }

    #[test]
    fn rpc_methods_can_have_their_own_buckets() {
        let limits = ClientCommandLimits {
            enabled: true,
            rpc: crate::config::rate_limit::RpcBuckets {
                enabled: true,
                buckets: set(5, 1000).buckets,
                method_overrides: vec![MethodBuckets {
                    method: "slow".into(),
                    enabled: true,
                    buckets: set(1, 1000).buckets,
                }],
            },
            ..Default::default()
        };
        let mut limiter = CommandLimiter::default();
        let now = Instant::now();
        assert!(limiter.allow(&limits, "rpc", Some("slow"), now));
        assert!(!limiter.allow(&limits, "rpc", Some("slow"), now));
        assert!(limiter.allow(&limits, "rpc", Some("fast"), now));
    }

    #[test]
    fn a_refused_command_takes_no_token() {
        let limits =
            ClientCommandLimits { enabled: true, total: set(10, 1000), history: set(1, 1000), ..Default::default() };
        let mut limiter = CommandLimiter::default();
        let now = Instant::now();
        assert!(limiter.allow(&limits, "history", None, now));
        for _ in 0..20 {
            assert!(!limiter.allow(&limits, "history", None, now));
        }
        for _ in 0..9 {
            assert!(limiter.allow(&limits, "presence", None, now), "total still has 9 tokens");
        }
    }
}
