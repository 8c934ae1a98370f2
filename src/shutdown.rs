//! Graceful shutdown, the one owner of process signals. Order (as Centrifugo): refuse new
//! connections and fail readiness, disconnect every client with 3001 "shutdown" so SDKs
//! reconnect elsewhere, let in-flight API requests finish, stop — all within
//! `shutdown.timeout`.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use tokio::time::{timeout_at, Instant};

use crate::cluster::LeaveCluster;
use crate::node::Node;
use crate::protocol::Disconnect;
use crate::registry::messages::{DisconnectAll, GetStats};

/// Completes on SIGINT or SIGTERM (Kubernetes sends SIGTERM).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT will stop the node");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the shutdown sequence, bounded by `limit`.
pub async fn drain(node: &Node, servers: &[ServerHandle], limit: Duration) {
    let deadline = Instant::now().checked_add(limit).unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
    node.start_draining();
    tracing::info!(timeout = ?limit, "shutdown: refusing new connections; disconnecting clients with 3001");
    let clients = node.registry.send(DisconnectAll(Disconnect::SHUTDOWN)).await.unwrap_or(0);
    if timeout_at(deadline, clients_gone(node)).await.is_err() {
        tracing::warn!("shutdown: clients still connected at the deadline");
    } else {
        tracing::info!(clients, "shutdown: all clients disconnected");
    }
    for server in servers {
        if timeout_at(deadline, server.stop(true)).await.is_err() {
            tracing::warn!("shutdown: HTTP server did not stop before the deadline");
        }
    }
    if let Some(bridge) = &node.cluster {
        if timeout_at(deadline, bridge.send(LeaveCluster)).await.is_err() {
            tracing::warn!("shutdown: could not tell the cluster this node is leaving before the deadline");
        } else {
            tracing::info!("shutdown: left the cluster");
        }
    }
    tracing::info!("shutdown complete");
}

async fn clients_gone(node: &Node) {
    loop {
        match node.registry.send(GetStats).await {
            Ok(stats) if stats.num_clients > 0 => tokio::time::sleep(Duration::from_millis(20)).await,
            _ => return,
        }
    }
}
