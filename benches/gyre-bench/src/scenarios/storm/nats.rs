//! What nats-server's monitoring port says about the store traffic during the storm.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::target::Target;

/// What nats-server's monitoring port tells about the store traffic.
#[derive(Clone, Default)]
pub(super) struct NatsCounts {
    /// JetStream API requests served so far (`api.total` of `/jsz`; direct gets are not counted).
    pub(super) api_calls: u64,
    /// Messages each gyre node's connection has sent so far, by connection id (`/connz`).
    pub(super) node_messages: std::collections::HashMap<u64, u64>,
}

impl NatsCounts {
    pub(super) async fn read(monitor: &Target) -> Result<NatsCounts, String> {
        let jsz = monitor_get(monitor, "/jsz").await?;
        let connz = monitor_get(monitor, "/connz?limit=4096").await?;
        let api_calls = jsz["api"]["total"].as_u64().ok_or("nats monitor /jsz has no api.total")?;
        let node_messages = connz["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with("gyre ")))
            .filter_map(|c| Some((c["cid"].as_u64()?, c["in_msgs"].as_u64()?)))
            .collect();
        Ok(NatsCounts { api_calls, node_messages })
    }

    /// (API calls, messages the nodes that outlived the kill sent) since `earlier`.
    pub(super) fn since(&self, earlier: &NatsCounts) -> (u64, u64) {
        let sent = self
            .node_messages
            .iter()
            .filter_map(|(cid, now)| earlier.node_messages.get(cid).map(|then| now.saturating_sub(*then)))
            .sum();
        (self.api_calls.saturating_sub(earlier.api_calls), sent)
    }
}

/// GETs a JSON document from nats-server's monitoring port.
async fn monitor_get(monitor: &Target, path: &str) -> Result<Value, String> {
    let mut stream = tokio::net::TcpStream::connect(monitor.addr)
        .await
        .map_err(|e| format!("nats monitor {}: {e}", monitor.addr))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", monitor.host);
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("nats monitor: {e}"))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|e| format!("nats monitor: {e}"))?;
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| &response[at + 4..])
        .ok_or_else(|| format!("nats monitor: no HTTP body in the {path} answer"))?;
    serde_json::from_slice(body).map_err(|e| format!("nats monitor {path}: {e}"))
}
