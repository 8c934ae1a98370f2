//! Memory per idle connection: starts the real `gyre` binary, opens N WebSocket connections that
//! each `connect` (HS256 JWT) and `subscribe` to their own channel, and reads the server's
//! VmRSS from /proc before and after. Loopback only; bounded by N and a timeout.
//!
//! Run: `cargo bench --bench idle_connections -- 1000` (default N = 1000). With `IDLE_TLS=1` the
//! node serves `http_server.tls` and the connections are wss.
//!
//! Heap profile by allocation site (massif snapshots before and after the N connections):
//! `GYRE_WRAPPER="valgrind --tool=massif --threshold=0.01 --depth=40" MASSIF_SNAPSHOTS=/tmp/idle \
//!  cargo bench --bench idle_connections -- 1000`, then `ms_print /tmp/idle.after` (RSS figures are
//! meaningless under valgrind).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{enable_tls, heap_snapshot, rss_kib, start_gyre, subscriber_over, write_config};

fn main() {
    let count: usize = support::arg(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), "config.json", None);
    let tls = std::env::var("IDLE_TLS").is_ok_and(|value| value == "1");
    let client = tls.then(|| enable_tls(&config));
    let (node, addr) = start_gyre(env!("CARGO_BIN_EXE_gyre"), &config);
    let url = match tls {
        true => format!("wss://localhost:{}/connection/websocket", addr.rsplit(':').next().unwrap_or_default()),
        false => format!("ws://{addr}/connection/websocket"),
    };
    let pid = node.pid();
    let outcome = actix_rt::System::new().block_on(async move {
        // No pool limit: every WebSocket holds its connection.
        let client =
            client.unwrap_or_else(|| awc::Client::builder().connector(awc::Connector::new().limit(0)).finish());
        measure(pid, &client, &url, count).await
    });
    drop(node);
    support::report(outcome);
}

async fn measure(pid: u32, client: &awc::Client, url: &str, count: usize) -> Result<String, String> {
    // Warm up allocator arenas and worker threads so the baseline is not an empty process.
    let mut sockets = Vec::with_capacity(count + 10);
    for user in 0..10 {
        sockets.push(subscriber_over(client, url, &format!("warm{user}"), &format!("warm{user}")).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    heap_snapshot(pid, "before");
    let started = Instant::now();
    for user in 0..count {
        sockets.push(subscriber_over(client, url, &user.to_string(), &format!("user{user}")).await?);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    heap_snapshot(pid, "after");
    let per_connection = (after.saturating_sub(before)) as f64 * 1024.0 / count as f64;
    Ok(format!(
        "connections: {count}\nrss before: {before} KiB\nrss after: {after} KiB\nrss per connected+subscribed connection: {:.0} bytes ({:.1} KiB)\nsequential connect+subscribe: {:.0}/s",
        per_connection,
        per_connection / 1024.0,
        count as f64 / connect_secs
    ))
}
