//! `storm`: a recovery storm. `--clients` clients are spread round-robin over `--nodes`, each
//! subscribed with recovery to one channel of a history namespace, while the first node
//! publishes round-robin over the channels. After `--before-secs` the `--victim` node is killed
//! with SIGKILL. Its clients reconnect with the SDKs' backoff to the other nodes (spread over
//! them as a load balancer would) and resubscribe from their last offset and epoch.
//!
//! Measured, from the kill: when each of those clients noticed, made its first attempt, was
//! connected, and was subscribed again (and whether with `recovered: true`); the JetStream API
//! calls meanwhile (`--nats-monitor`); the survivors' CPU (`--server-pid`). Checked: every
//! client gets every offset of its channel once, in order, up to the last one published; gaps,
//! repeats and clients left behind are counted.

mod client;
mod nats;
mod summary;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use crate::cli::StormArgs;
use crate::codec::quoted;
use crate::engine::Run;
use crate::http::HttpConn;
use crate::jwt::Minter;
use crate::procstat::{self, Server};
use crate::report::Report;
use crate::stats::Stats;
use crate::target::{Sources, Target};

use super::{report, Outcome};
use client::{home_node, spawn_clients, Backoff};
use nats::NatsCounts;
use summary::{results, summary, Figures, Storm};

const RAMP_TIMEOUT: Duration = Duration::from_secs(120);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);

/// What every client and publisher shares.
struct Shared {
    nodes: Vec<Target>,
    sources: Sources,
    minter: Minter,
    channels: Vec<String>,
    backoff: Backoff,
    /// Last offset published to each channel (from the API's answers).
    published: Vec<AtomicU64>,
    /// Last offset each client holds.
    positions: Vec<AtomicU64>,
    /// Clients subscribed at least once (the ramp is over when all are).
    subscribed_once: AtomicUsize,
    /// Clients subscribed again after the kill.
    resubscribed: AtomicUsize,
    killed_at: OnceLock<Instant>,
    stats: Arc<Stats>,
}

impl Shared {
    pub(super) fn since_kill_ms(&self) -> Option<f64> {
        self.killed_at.get().map(|at| at.elapsed().as_secs_f64() * 1000.0)
    }
}

pub async fn run(args: StormArgs) -> Result<Report, String> {
    check_args(&args)?;
    let channels: Vec<String> = (0..args.channels).map(|k| format!("{}:storm-{k}", args.namespace)).collect();
    let run = Run::new(&args.common, channels.clone(), args.clients)?;
    let monitor = args.nats_monitor.as_deref().map(Target::parse).transpose()?;
    let shared = Arc::new(Shared::new(&args, channels, run.stats.clone())?);
    let (stop_clients, stopped) = watch::channel(false);

    run.phase.set(format!("ramp {} clients", args.clients));
    let ramp_started = Instant::now();
    let clients = spawn_clients(&shared, &args, &stopped).await;
    wait_until("every client subscribed", RAMP_TIMEOUT, || shared.subscribed_once.load(Relaxed) == args.clients)
        .await?;
    let ramp_secs = ramp_started.elapsed().as_secs_f64();

    run.phase.set(format!("publishing {}/s", args.rate));
    let publishing = Arc::new(AtomicBool::new(true));
    let publishers = spawn_publishers(&shared, &args, &publishing);
    tokio::time::sleep(secs(args.before_secs)).await;
    let storm = storm(&run, &shared, &args, monitor.as_ref()).await?;

    run.phase.set("publishing after the storm");
    tokio::time::sleep(secs(args.after_secs)).await;
    publishing.store(false, Relaxed);
    for publisher in publishers {
        let _ = publisher.await;
    }
    run.phase.set("waiting for every client to catch up");
    let caught_up = wait_until("every client caught up", CATCH_UP_TIMEOUT, || behind(&shared, &args) == 0).await;
    let left_behind = behind(&shared, &args);
    let _ = stop_clients.send(true);
    let mut reports = Vec::with_capacity(clients.len());
    for client in clients {
        reports.push(client.await.map_err(|e| format!("client task: {e}"))?);
    }

    let figures = Figures {
        ramp_secs,
        storm,
        caught_up: caught_up.is_ok(),
        left_behind,
        published: shared.published.iter().map(|p| p.load(Relaxed)).sum(),
    };
    let outcome = Outcome {
        params: serde_json::json!({
            "nodes": args.nodes, "victim": args.victim, "clients": args.clients, "channels": args.channels,
            "namespace": args.namespace, "affinity": args.affinity, "rate": args.rate,
            "reconnect_min_ms": args.reconnect_min_ms, "reconnect_max_ms": args.reconnect_max_ms,
        }),
        summary: Some(summary(&args, &figures, &reports)),
        results: Some(results(&figures, &reports)),
        ..Outcome::default()
    };
    Ok(report(&run, "storm", outcome))
}

impl Shared {
    fn new(args: &StormArgs, channels: Vec<String>, stats: Arc<Stats>) -> Result<Shared, String> {
        let nodes = args.nodes.iter().map(|n| Target::parse(n)).collect::<Result<Vec<_>, _>>()?;
        Ok(Shared {
            sources: Sources::new(&nodes[0], args.common.source_ips),
            nodes,
            minter: Minter::new(&args.common.secret, 3600),
            published: (0..args.channels).map(|_| AtomicU64::new(0)).collect(),
            positions: (0..args.clients).map(|_| AtomicU64::new(0)).collect(),
            channels,
            backoff: Backoff { min_ms: args.reconnect_min_ms, max_ms: args.reconnect_max_ms },
            subscribed_once: AtomicUsize::new(0),
            resubscribed: AtomicUsize::new(0),
            killed_at: OnceLock::new(),
            stats,
        })
    }
}

/// Kills the victim and waits until its clients are subscribed again; what that window cost.
async fn storm(run: &Run, shared: &Shared, args: &StormArgs, monitor: Option<&Target>) -> Result<Storm, String> {
    let victims = (0..args.clients).filter(|&i| home_node(args, i) == args.victim).count();
    let survivors = Server { pids: args.common.server_pid.clone() };
    let nats_before = match monitor {
        Some(m) => Some(NatsCounts::read(m).await?),
        None => None,
    };
    let published_before = run.stats.published.load(Relaxed);
    let (cpu_before, loader_before) = (survivors.cpu(), procstat::loader_cpu());
    run.phase.set(format!("storm: {victims} clients of node {} recovering", args.victim));
    // The clock starts before the signal: a client may see its socket close within a millisecond.
    let killed_at = Instant::now();
    let _ = shared.killed_at.set(killed_at);
    kill(args.victim_pid)?;
    let all_back = wait_until("the killed node's clients resubscribed", secs(args.recover_wait_secs), || {
        shared.resubscribed.load(Relaxed) >= victims
    })
    .await;
    let seconds = killed_at.elapsed().as_secs_f64();
    let (cpu_after, loader_after) = (survivors.cpu(), procstat::loader_cpu());
    let nats_after = match monitor {
        Some(m) => Some(NatsCounts::read(m).await?),
        None => None,
    };
    Ok(Storm {
        victims,
        seconds,
        all_back: all_back.is_ok(),
        nats: nats_before.zip(nats_after).map(|(before, after)| after.since(&before)),
        published: run.stats.published.load(Relaxed) - published_before,
        cpu: cpu_after.since(&cpu_before),
        loader_percent: loader_after.percent_since(&loader_before),
    })
}

fn check_args(args: &StormArgs) -> Result<(), String> {
    if args.nodes.len() < 2 {
        return Err("--nodes needs at least two addresses (one survives)".into());
    }
    if args.victim == 0 || args.victim >= args.nodes.len() {
        return Err(format!("--victim must be 1..{} (node 0 publishes)", args.nodes.len() - 1));
    }
    if args.channels == 0 || args.clients < args.channels {
        return Err("--clients must be at least --channels, and --channels at least 1".into());
    }
    if args.rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    Ok(())
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Polls `done` every 10 ms for at most `limit`.
async fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {limit:?} waiting until {what}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Clients whose position is short of the last offset published to their channel.
fn behind(shared: &Shared, args: &StormArgs) -> usize {
    (0..args.clients)
        .filter(|&i| shared.positions[i].load(Relaxed) < shared.published[i % args.channels].load(Relaxed))
        .count()
}

/// Publishers over `--publishers` keep-alive connections to node 0; publisher i owns channels
/// i, i+P, … so each channel's publications go out one at a time, in order.
fn spawn_publishers(
    shared: &Arc<Shared>,
    args: &StormArgs,
    publishing: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let count = args.common.publishers.clamp(1, args.channels);
    let period = Duration::from_secs_f64(count as f64 / args.rate);
    (0..count)
        .map(|i| {
            let (shared, publishing) = (shared.clone(), publishing.clone());
            let mut conn = HttpConn::new(shared.nodes[0].clone(), shared.sources.pick(i), &args.common.api_key);
            let owned: Vec<usize> = (i..args.channels).step_by(count).collect();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(period);
                for (seq, &channel) in owned.iter().cycle().enumerate() {
                    ticks.tick().await;
                    if !publishing.load(Relaxed) {
                        return;
                    }
                    publish(&shared, &mut conn, channel, seq).await;
                }
            })
        })
        .collect()
}

async fn publish(shared: &Shared, conn: &mut HttpConn, channel: usize, seq: usize) {
    let body = format!(r#"{{"channel":{},"data":{{"n":{seq}}}}}"#, quoted(&shared.channels[channel]));
    let stats = &shared.stats;
    let answer = conn.post("/api/publish", body.as_bytes()).await;
    let offset = answer.as_ref().ok().filter(|r| r.is_ok()).and_then(|r| {
        let body: Value = serde_json::from_slice(&r.body).ok()?;
        body["result"]["offset"].as_u64()
    });
    match offset {
        Some(offset) => {
            shared.published[channel].fetch_max(offset, Relaxed);
            stats.published.fetch_add(1, Relaxed);
        }
        None => {
            stats.publish_errors.fetch_add(1, Relaxed);
            let error = match answer {
                Ok(response) => response.describe(),
                Err(error) => error,
            };
            stats.note_error(format!("publish: {error}"));
        }
    }
}

/// Sends SIGKILL to the victim node.
fn kill(pid: u32) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .map_err(|e| format!("running kill: {e}"))?;
    if !status.success() {
        return Err(format!("kill -KILL {pid} failed ({status}): is --victim-pid the node's PID?"));
    }
    Ok(())
}
