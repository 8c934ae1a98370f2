//! Resource limits a hostile or buggy client meets, each shown to hold while the node keeps
//! serving: command rate limits (`client.rate_limit.client_command`, error 111).

use std::time::Duration;

use gyre::config::rate_limit::{Bucket, Buckets};
use serde_json::json;

use crate::support::*;

/// `history` limited to 3 a minute: a client reading history in a loop gets 111 (temporary)
/// once the bucket is empty, its other commands still run, and another connection has its own
/// bucket.
#[actix_web::test]
async fn history_reads_over_the_rate_limit_get_111_and_the_connection_keeps_working() {
    let node = TestNode::start_with(|s| {
        let limits = &mut s.client.rate_limit.client_command;
        limits.enabled = true;
        limits.history =
            Buckets { enabled: true, buckets: vec![Bucket { interval: Duration::from_secs(60), rate: 3 }] };
    })
    .await;
    node.api_ok("publish", json!({"channel": "chat:rl", "data": 1})).await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "chat:rl"})).await;
    for id in 3..6 {
        let reply = client.request(id, "history", json!({"channel": "chat:rl", "limit": 10})).await;
        assert_eq!(reply["history"]["publications"][0]["data"], 1, "{reply}");
    }
    for id in 6..20 {
        let reply = client.request(id, "history", json!({"channel": "chat:rl", "limit": 10})).await;
        assert_eq!(reply["error"], json!({"code": 111, "message": "too many requests", "temporary": true}));
    }
    let presence = client.request(20, "presence", json!({"channel": "chat:rl"})).await;
    assert!(presence["presence"].is_object(), "other commands are not limited: {presence}");
    node.api_ok("publish", json!({"channel": "chat:rl", "data": 2})).await;
    assert_eq!(client.publication("chat:rl").await["data"], 2);

    let mut other = node.connect_as("2").await;
    other.request(2, "subscribe", json!({"channel": "chat:rl"})).await;
    let reply = other.request(3, "history", json!({"channel": "chat:rl", "limit": 10})).await;
    assert!(reply.get("error").is_none(), "each connection has its own buckets: {reply}");
}
