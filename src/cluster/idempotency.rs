//! Cluster-wide idempotent publish: a JetStream key-value bucket holds one marker per
//! (channel, idempotency key) for [`IDEMPOTENCY_WINDOW`]. The first node to `create` the marker
//! publishes; every later attempt, through any node, is suppressed and answers success, as
//! Centrifugo does for a repeated key.
//!
//! The bucket's stream is created by hand with KV conventions because async-nats'
//! `create_key_value` cannot talk to nats-server 2.9 (shared cluster notes §3.3). Not atomic like
//! Centrifugo's Redis script: if the publish itself fails after the marker was created, the marker
//! is removed again so a retry is not swallowed.

use async_nats::jetstream::{self, kv, stream};

use super::subjects::encode_token;
use crate::channel::IDEMPOTENCY_WINDOW;

/// Whether this publish is the first with its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First: publish it.
    First,
    /// Seen within the window (on any node): do not publish again.
    Repeat,
}

/// The marker bucket.
pub struct Idempotency {
    store: kv::Store,
}

impl Idempotency {
    /// Opens (creating if needed) the bucket `<prefix>_idempotency`.
    pub async fn open(client: &async_nats::Client, prefix: &str) -> anyhow::Result<Self> {
        let js = jetstream::new(client.clone());
        let bucket = format!("{}_idempotency", bucket_safe(prefix));
        let config = stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            max_age: IDEMPOTENCY_WINDOW,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        js.get_or_create_stream(config).await.map_err(|e| anyhow::anyhow!("cannot create the {bucket} stream: {e}"))?;
        let store =
            js.get_key_value(bucket.as_str()).await.map_err(|e| anyhow::anyhow!("cannot open {bucket}: {e}"))?;
        Ok(Self { store })
    }

    /// Claims `key` for `channel`.
    pub async fn claim(&self, channel: &str, key: &str) -> Result<Claim, String> {
        match self.store.create(marker(channel, key), bytes::Bytes::from_static(b"1")).await {
            Ok(_) => Ok(Claim::First),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(Claim::Repeat),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Gives a claim back (the publish it guarded failed).
    pub async fn release(&self, channel: &str, key: &str) {
        if let Err(error) = self.store.delete(marker(channel, key)).await {
            tracing::warn!(%error, "could not remove an idempotency marker after a failed publish");
        }
    }
}

fn marker(channel: &str, key: &str) -> String {
    format!("{}.{}", encode_token(channel), encode_token(key))
}

/// Bucket names allow `[A-Za-z0-9_-]` only.
fn bucket_safe(prefix: &str) -> String {
    prefix.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_valid_kv_keys() {
        let key = marker("chat:room #1", "order/42");
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./".contains(c)), "{key}");
        assert_eq!(bucket_safe("my.prefix"), "my_prefix");
    }
}
