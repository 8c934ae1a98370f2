//! # gyre-bench
//!
//! A load generator for gyre and, side by side, for the Go centrifuge 0.15 peer in
//! `benches/peer/`. It is a pure client: start the server yourself (or with
//! `benches/side_by_side.sh`) and point gyre-bench at it. Loopback targets only.
//!
//! ```text
//! gyre-bench idle     --addr 127.0.0.1:8000 --server-pid PID --conns 10000 --hold-secs 60
//! gyre-bench fanout   --addr 127.0.0.1:8000 --server-pid PID --subscribers 1,100,1000,10000
//! gyre-bench channels --addr 127.0.0.1:8000 --conns 2000 --rates 1000,5000 --batch 100
//! gyre-bench cluster  --addr 127.0.0.1:8001 --addr2 127.0.0.1:8002 --subscribers 100
//! gyre-bench history  --addr 127.0.0.1:8000 --namespace hist --channels 100
//! gyre-bench storm    --nodes 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003 --victim-pid PID
//! gyre-bench compare  target/bench-report/gyre target/bench-report/peer --out target/bench-report
//! gyre-bench proxy-backend --port 9100            # answers connect/publish proxy calls at once
//! gyre-bench connect-rate --addr 127.0.0.1:8000 --auth jwt,tokenless --conns 5000 --rounds 3
//! gyre-bench publish-latency --addr 127.0.0.1:8000 --namespaces plain,proxied --rate 200
//! ```
//!
//! Shared options (every scenario): `--protocol v2|v1|v2pb|v1pb` (v1 for the Go peer; `pb` for
//! the Protobuf encoding), `--secret`
//! (HS256), `--api-key`, `--server-pid` (CPU and RSS from /proc), `--label`, `--tag`,
//! `--out DIR` (LABEL-SCENARIO[-TAG].json + .md), `--workers` (tokio threads, default 1),
//! `--source-ips` (connections spread over 127.0.0.2…), `--connect-rate` (default 5000/s),
//! `--publishers` (keep-alive HTTP connections), `--step-secs`, `--warmup-secs`,
//! `--max-conns`, `--max-duration`. A progress line goes to stderr every second; the Markdown
//! report goes to stdout. `benches/README.md` describes the scenarios and the side-by-side script.
//!
//! Layout: `codec/` (protocol v2 and v1, JSON and Protobuf), `ws.rs` (upgrade + framing), `conn.rs` (one
//! client), `http.rs` + `publisher.rs` (HTTP publishers), `engine.rs` (ramps and steps),
//! `scenarios/`, `backend.rs` (the proxy backend), `procstat.rs` (/proc), `stats.rs`, `report.rs`, `compare.rs`.

mod backend;
mod cli;
mod clock;
mod codec;
mod compare;
mod conn;
mod engine;
mod http;
mod jwt;
mod procstat;
mod progress;
mod publisher;
mod report;
mod scenarios;
mod stats;
mod stream;
mod target;
mod ws;

use std::time::Duration;

use clap::Parser;

use cli::{Cli, Command, Common};
use report::Report;

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Compare(args) => compare::run(&args).map(|md| println!("{md}")),
        Command::ProxyBackend(args) => backend::run(&args),
        command => run_scenario(command),
    };
    if let Err(error) = outcome {
        eprintln!("gyre-bench: {error}");
        std::process::exit(1);
    }
}

fn common(command: &Command) -> Option<&Common> {
    match command {
        Command::Idle(a) => Some(&a.common),
        Command::Fanout(a) => Some(&a.common),
        Command::Channels(a) => Some(&a.common),
        Command::Cluster(a) => Some(&a.common),
        Command::History(a) => Some(&a.common),
        Command::Storm(a) => Some(&a.common),
        Command::ConnectRate(a) => Some(&a.common),
        Command::PublishLatency(a) => Some(&a.common),
        Command::Compare(_) | Command::ProxyBackend(_) => None,
    }
}

/// Runs a scenario on a runtime with `--workers` threads, bounded by `--max-duration`.
fn run_scenario(command: Command) -> Result<(), String> {
    let common = common(&command).ok_or("not a scenario")?.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common.workers.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let limit = Duration::from_secs(common.max_duration);
    let report = runtime.block_on(async move {
        match tokio::time::timeout(limit, dispatch(command)).await {
            Ok(report) => report,
            Err(_) => Err(format!("run exceeded --max-duration {}s", limit.as_secs())),
        }
    })?;
    print!("{}", report.markdown());
    if let Some(dir) = &common.out {
        report.write(dir)?;
    }
    // Open connections are dropped with the runtime; don't wait for their tasks.
    runtime.shutdown_background();
    Ok(())
}

async fn dispatch(command: Command) -> Result<Report, String> {
    match command {
        Command::Idle(args) => scenarios::idle::run(args).await,
        Command::Fanout(args) => scenarios::fanout::run(args).await,
        Command::Channels(args) => scenarios::channels::run(args).await,
        Command::Cluster(args) => scenarios::cluster::run(args).await,
        Command::History(args) => scenarios::history::run(args).await,
        Command::Storm(args) => scenarios::storm::run(args).await,
        Command::ConnectRate(args) => scenarios::proxy::connect_rate(args).await,
        Command::PublishLatency(args) => scenarios::proxy::publish_latency(args).await,
        Command::Compare(_) | Command::ProxyBackend(_) => Err("not a scenario".into()),
    }
}
