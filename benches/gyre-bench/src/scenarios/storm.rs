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

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::cli::StormArgs;
use crate::codec::{quoted, Protocol};
use crate::engine::Run;
use crate::http::HttpConn;
use crate::jwt::Minter;
use crate::procstat::{self, Server};
use crate::report::Report;
use crate::stats::Stats;
use crate::target::{Sources, Target};
use crate::ws::{Received, Ws};

use super::{report, Outcome};

const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
const RAMP_TIMEOUT: Duration = Duration::from_secs(120);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);

/// The SDKs' reconnect backoff (full jitter): attempt k waits min(max, min + rand(0..min·2^k)).
#[derive(Clone, Copy)]
struct Backoff {
    min_ms: u64,
    max_ms: u64,
}

impl Backoff {
    fn delay(self, attempt: u32) -> Duration {
        if self.min_ms == 0 {
            return Duration::ZERO;
        }
        let ceiling = self.min_ms.saturating_mul(1u64 << attempt.min(31)).min(self.max_ms);
        let jitter = rand::random_range(0..=ceiling);
        Duration::from_millis((self.min_ms + jitter).min(self.max_ms))
    }
}

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
    fn since_kill_ms(&self) -> Option<f64> {
        self.killed_at.get().map(|at| at.elapsed().as_secs_f64() * 1000.0)
    }
}

/// One client's account of the run.
#[derive(Default)]
struct ClientReport {
    gaps: u64,
    repeats: u64,
    /// Connections lost (the victim's clients lose one each; anything more is noted).
    losses: u32,
    failed_attempts: u32,
    /// Milliseconds from the kill, for a client that lost its connection after it.
    noticed_ms: Option<f64>,
    first_attempt_ms: Option<f64>,
    connected_ms: Option<f64>,
    resubscribed_ms: Option<f64>,
    /// The resubscribe's `recovered` flag (and the epoch was the same).
    recovered: Option<bool>,
    last_error: Option<String>,
}

/// The client's place in its channel's stream.
struct Position {
    offset: u64,
    epoch: String,
}

pub async fn run(args: StormArgs) -> Result<Report, String> {
    check_args(&args)?;
    let channels: Vec<String> = (0..args.channels).map(|k| format!("{}:storm-{k}", args.namespace)).collect();
    let run = Run::new(&args.common, channels.clone(), args.clients)?;
    let nodes = args.nodes.iter().map(|n| Target::parse(n)).collect::<Result<Vec<_>, _>>()?;
    let monitor = args.nats_monitor.as_deref().map(Target::parse).transpose()?;
    let shared = Arc::new(Shared {
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
        stats: run.stats.clone(),
    });
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
    tokio::time::sleep(Duration::from_secs_f64(args.before_secs)).await;

    let victims = (0..args.clients).filter(|&i| home_node(&args, i) == args.victim).count();
    let survivors = Server { pids: args.common.server_pid.clone() };
    let nats_before = match &monitor {
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
    let storm_secs = killed_at.elapsed().as_secs_f64();
    let (cpu_after, loader_after) = (survivors.cpu(), procstat::loader_cpu());
    let nats_after = match &monitor {
        Some(m) => Some(NatsCounts::read(m).await?),
        None => None,
    };
    let published_in_storm = run.stats.published.load(Relaxed) - published_before;

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
        victims,
        ramp_secs,
        storm_secs,
        all_back: all_back.is_ok(),
        caught_up: caught_up.is_ok(),
        left_behind,
        nats: nats_before.zip(nats_after).map(|(before, after)| after.since(&before)),
        published_in_storm,
        cpu: cpu_after.since(&cpu_before),
        loader_percent: loader_after.percent_since(&loader_before),
        published: shared.published.iter().map(|p| p.load(Relaxed)).sum(),
    };
    let outcome = Outcome {
        params: serde_json::json!({
            "nodes": args.nodes, "victim": args.victim, "clients": args.clients, "channels": args.channels,
            "namespace": args.namespace, "affinity": args.affinity, "rate": args.rate, "reconnect_min_ms": args.reconnect_min_ms,
            "reconnect_max_ms": args.reconnect_max_ms,
        }),
        summary: Some(summary(&args, &figures, &reports)),
        results: Some(results(&figures, &reports)),
        ..Outcome::default()
    };
    Ok(report(&run, "storm", outcome))
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

/// Starts every client at `--connect-rate` per second.
async fn spawn_clients(
    shared: &Arc<Shared>,
    args: &StormArgs,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<ClientReport>> {
    let batch = 50;
    let pause = Duration::from_secs_f64(batch as f64 / args.common.connect_rate.max(1) as f64);
    let mut handles = Vec::with_capacity(args.clients);
    for index in 0..args.clients {
        let home = home_node(args, index);
        handles.push(tokio::spawn(client(shared.clone(), index, home, args.channels, stop.clone())));
        if (index + 1) % batch == 0 {
            tokio::time::sleep(pause).await;
        }
    }
    handles
}

/// How a session ended.
enum Ended {
    Stopped,
    /// The connection failed before it was subscribed.
    Refused(String),
    /// A subscribed connection was lost.
    Lost(String),
}

/// One client: sessions until the run stops; after a lost or refused session it backs off and
/// tries another node than the one it was on.
async fn client(
    shared: Arc<Shared>,
    index: usize,
    home: usize,
    channels: usize,
    mut stop: watch::Receiver<bool>,
) -> ClientReport {
    let mut report = ClientReport::default();
    let mut position: Option<Position> = None;
    let mut node = home;
    let mut attempt = 0u32;
    loop {
        let session = Session { shared: &shared, index, channel: index % channels };
        match session.run(node, &mut position, &mut report, &mut stop).await {
            Ended::Stopped => return report,
            Ended::Refused(error) => {
                report.failed_attempts += 1;
                report.last_error = Some(error);
                attempt += 1;
            }
            Ended::Lost(error) => {
                report.losses += 1;
                shared.stats.disconnected.fetch_add(1, Relaxed);
                if report.noticed_ms.is_none() {
                    report.noticed_ms = shared.since_kill_ms();
                }
                report.last_error = Some(error);
                attempt = 0;
            }
        }
        node = next_node(node, index + attempt as usize, shared.nodes.len());
        tokio::select! {
            _ = tokio::time::sleep(shared.backoff.delay(attempt)) => {}
            _ = stop.changed() => return report,
        }
        if report.noticed_ms.is_some() && report.first_attempt_ms.is_none() {
            report.first_attempt_ms = shared.since_kill_ms();
        }
    }
}

/// The node client `index` first connects to.
fn home_node(args: &StormArgs, index: usize) -> usize {
    let spread_by = if args.affinity { index % args.channels } else { index };
    spread_by % args.nodes.len()
}

/// Another node than `from`, chosen by `spread` (a load balancer's choice among the others).
fn next_node(from: usize, spread: usize, nodes: usize) -> usize {
    (from + 1 + spread % (nodes - 1)) % nodes
}

struct Session<'a> {
    shared: &'a Shared,
    index: usize,
    channel: usize,
}

impl Session<'_> {
    async fn run(
        &self,
        node: usize,
        position: &mut Option<Position>,
        report: &mut ClientReport,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut ws = match self.subscribe(node, position, report).await {
            Ok(ws) => ws,
            Err(error) => return Ended::Refused(error),
        };
        loop {
            let frame = tokio::select! {
                received = ws.next() => received,
                _ = stop.changed() => return Ended::Stopped,
            };
            let frame = match frame {
                Received::Closed(why) => return Ended::Lost(why),
                Received::Text(frame) => frame,
            };
            match self.read_pushes(&frame, position, report) {
                Ok(false) => {}
                Ok(true) => {
                    if let Err(error) = ws.send(Protocol::V2, b"{}".to_vec()).await {
                        return Ended::Lost(error);
                    }
                }
                Err(error) => return Ended::Lost(error),
            }
        }
    }

    /// Connects to `node` and subscribes, recovering from `position` when there is one.
    async fn subscribe(
        &self,
        node: usize,
        position: &mut Option<Position>,
        report: &mut ClientReport,
    ) -> Result<Ws, String> {
        let shared = self.shared;
        let mut ws = Ws::connect(&shared.nodes[node], shared.sources.pick(self.index), "").await?;
        let token = shared.minter.token(&format!("storm-{}", self.index));
        ws.send(Protocol::V2, format!(r#"{{"id":1,"connect":{{"token":{}}}}}"#, quoted(&token)).into_bytes()).await?;
        reply(&mut ws, 1).await?;
        let recovering = report.noticed_ms.is_some();
        if recovering && report.connected_ms.is_none() {
            report.connected_ms = shared.since_kill_ms();
        }
        let channel = quoted(&shared.channels[self.channel]);
        let command = match position {
            None => format!(r#"{{"id":2,"subscribe":{{"channel":{channel}}}}}"#),
            Some(p) => format!(
                r#"{{"id":2,"subscribe":{{"channel":{channel},"recover":true,"offset":{},"epoch":{}}}}}"#,
                p.offset,
                quoted(&p.epoch)
            ),
        };
        ws.send(Protocol::V2, command.into_bytes()).await?;
        let result = reply(&mut ws, 2).await?;
        let result = &result["subscribe"];
        let epoch = result["epoch"].as_str().unwrap_or_default().to_owned();
        match position {
            None => {
                *position = Some(Position { offset: result["offset"].as_u64().unwrap_or(0), epoch });
                shared.subscribed_once.fetch_add(1, Relaxed);
                shared.stats.connected.fetch_add(1, Relaxed);
            }
            Some(p) => {
                let same_epoch = p.epoch == epoch;
                for publication in result["publications"].as_array().into_iter().flatten() {
                    self.accept(p, publication["offset"].as_u64().unwrap_or(0), report);
                }
                if recovering && report.resubscribed_ms.is_none() {
                    report.resubscribed_ms = shared.since_kill_ms();
                    report.recovered = Some(same_epoch && result["recovered"].as_bool() == Some(true));
                    shared.resubscribed.fetch_add(1, Relaxed);
                }
            }
        }
        Ok(ws)
    }

    /// Takes the publications of one frame; `Ok(true)` when it held a ping to answer.
    fn read_pushes(
        &self,
        frame: &[u8],
        position: &mut Option<Position>,
        report: &mut ClientReport,
    ) -> Result<bool, String> {
        let mut ping = false;
        for line in frame.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let message: Value = serde_json::from_slice(line).map_err(|e| format!("undecodable frame: {e}"))?;
            let push = &message["push"];
            if let (Some(p), Some(offset)) = (position.as_mut(), push["pub"]["offset"].as_u64()) {
                self.accept(p, offset, report);
            } else if !push["disconnect"].is_null() {
                return Err(format!("disconnect push {}", push["disconnect"]));
            } else if message.as_object().is_some_and(|m| m.is_empty()) {
                ping = true;
            }
        }
        Ok(ping)
    }

    /// Counts a publication at `offset` against the client's position.
    fn accept(&self, position: &mut Position, offset: u64, report: &mut ClientReport) {
        match offset.cmp(&(position.offset + 1)) {
            std::cmp::Ordering::Equal => {}
            std::cmp::Ordering::Less => report.repeats += 1,
            std::cmp::Ordering::Greater => report.gaps += offset - position.offset - 1,
        }
        position.offset = position.offset.max(offset);
        self.shared.positions[self.index].store(position.offset, Relaxed);
        self.shared.stats.delivered.fetch_add(1, Relaxed);
    }
}

/// Reads frames until the reply to command `id`; fails on an error reply or a close.
async fn reply(ws: &mut Ws, id: u64) -> Result<Value, String> {
    loop {
        let frame = match tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await {
            Err(_) => return Err(format!("no reply to command {id} within {REPLY_TIMEOUT:?}")),
            Ok(Received::Closed(why)) => return Err(why),
            Ok(Received::Text(frame)) => frame,
        };
        for line in frame.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let message: Value = serde_json::from_slice(line).map_err(|e| format!("undecodable frame: {e}"))?;
            if message["id"].as_u64() != Some(id) {
                continue;
            }
            if !message["error"].is_null() {
                return Err(format!("command {id} refused: {}", message["error"]));
            }
            return Ok(message);
        }
    }
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

/// What nats-server's monitoring port tells about the store traffic.
#[derive(Clone, Default)]
struct NatsCounts {
    /// JetStream API requests served so far (`api.total` of `/jsz`; direct gets are not counted).
    api_calls: u64,
    /// Messages each gyre node's connection has sent so far, by connection id (`/connz`).
    node_messages: std::collections::HashMap<u64, u64>,
}

impl NatsCounts {
    async fn read(monitor: &Target) -> Result<NatsCounts, String> {
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
    fn since(&self, earlier: &NatsCounts) -> (u64, u64) {
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

/// What the run measured, apart from the clients' own reports.
struct Figures {
    victims: usize,
    ramp_secs: f64,
    storm_secs: f64,
    all_back: bool,
    caught_up: bool,
    left_behind: usize,
    /// JetStream API calls, and messages the surviving nodes sent to NATS, during the storm.
    nats: Option<(u64, u64)>,
    /// Publications made during the storm (each is one of those messages).
    published_in_storm: u64,
    cpu: (Option<u64>, f64),
    loader_percent: Option<f64>,
    published: u64,
}

/// The figures a test or a script checks: counts, and the slowest resubscribe.
fn results(figures: &Figures, reports: &[ClientReport]) -> Value {
    let count = |f: fn(&ClientReport) -> bool| reports.iter().filter(|r| f(r)).count();
    let sum = |f: fn(&ClientReport) -> u64| reports.iter().map(f).sum::<u64>();
    let last_resubscribe = reports
        .iter()
        .filter_map(|r| r.resubscribed_ms)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    serde_json::json!({
        "victims": figures.victims,
        "all_resubscribed": figures.all_back,
        "resubscribed": count(|r| r.resubscribed_ms.is_some()),
        "recovered": count(|r| r.recovered == Some(true)),
        "not_recovered": count(|r| r.recovered == Some(false)),
        "last_resubscribed_ms": last_resubscribe,
        "failed_attempts": sum(|r| u64::from(r.failed_attempts)),
        "jetstream_api_calls": figures.nats.map(|(calls, _)| calls),
        "survivor_nats_messages": figures.nats.map(|(_, sent)| sent),
        "published_in_storm": figures.published_in_storm,
        "published": figures.published,
        "gaps": sum(|r| r.gaps),
        "repeats": sum(|r| r.repeats),
        "behind_at_end": figures.left_behind,
    })
}

/// When, after the kill, a client reached a step of its way back.
type Moment = fn(&ClientReport) -> Option<f64>;

fn summary(args: &StormArgs, figures: &Figures, reports: &[ClientReport]) -> String {
    let recovering: Vec<&ClientReport> = reports.iter().filter(|r| r.noticed_ms.is_some()).collect();
    let mut md = String::new();
    let _ = writeln!(md, "\n### Recovery storm\n");
    let _ = writeln!(
        md,
        "{} clients on {} nodes over {} channels of `{}` ({}), {}/s publications through node 0; node {} \
         killed with {} of them (ramp took {:.1} s).\n",
        args.clients,
        args.nodes.len(),
        args.channels,
        args.namespace,
        if args.affinity { "each channel's clients on one node" } else { "each channel's clients on every node" },
        args.rate,
        args.victim,
        figures.victims,
        figures.ramp_secs
    );
    let _ = writeln!(md, "| from the kill (ms) | clients | p50 | p90 | p99 | max |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let rows: [(&str, Moment); 4] = [
        ("connection lost noticed", |r| r.noticed_ms),
        ("first reconnect attempt", |r| r.first_attempt_ms),
        ("connected again", |r| r.connected_ms),
        ("subscribed again", |r| r.resubscribed_ms),
    ];
    for (name, pick) in rows {
        let mut values: Vec<f64> = recovering.iter().filter_map(|r| pick(r)).collect();
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values.get(((values.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied();
        let cell = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} |",
            values.len(),
            cell(at(0.5)),
            cell(at(0.9)),
            cell(at(0.99)),
            cell(values.last().copied())
        );
    }
    let recovered = recovering.iter().filter(|r| r.recovered == Some(true)).count();
    let not_recovered = recovering.iter().filter(|r| r.recovered == Some(false)).count();
    let sum = |f: fn(&ClientReport) -> u64| reports.iter().map(f).sum::<u64>();
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "- All {} resubscribed: {} ({:.2} s after the kill); `recovered: true` {recovered}, not recovered {not_recovered}.",
        figures.victims,
        if figures.all_back { "yes" } else { "NO" },
        figures.storm_secs
    );
    let _ = writeln!(md, "- Failed reconnect attempts: {}.", sum(|r| r.failed_attempts as u64));
    if let Some((calls, sent)) = figures.nats {
        let per = |n: u64| n as f64 / figures.victims.max(1) as f64;
        let other = sent.saturating_sub(figures.published_in_storm);
        let _ = writeln!(
            md,
            "- During the storm: JetStream API calls {calls} ({:.2} per recovering client); messages the surviving \
             nodes sent to NATS {sent}, of which {} publications, leaving {other} ({:.2} per recovering client: \
             store reads, joins, presence, heartbeats).",
            per(calls),
            figures.published_in_storm,
            per(other)
        );
    }
    if let (Some(cpu_us), seconds) = figures.cpu {
        let _ = writeln!(
            md,
            "- Survivors' CPU (`--server-pid`) during the storm: {:.0} ms in {seconds:.2} s ({:.0}% of one core); \
             loader {:.0}%.",
            cpu_us as f64 / 1000.0,
            cpu_us as f64 / seconds.max(1e-9) / 1e4,
            figures.loader_percent.unwrap_or(0.0)
        );
    }
    let others = reports.iter().filter(|r| r.losses > u32::from(r.noticed_ms.is_some())).count();
    let _ = writeln!(
        md,
        "- Publications: {} published; gaps {}, repeats {}; clients behind at the end {}{}; clients that lost \
         a connection other than to the kill {others}.",
        figures.published,
        sum(|r| r.gaps),
        sum(|r| r.repeats),
        figures.left_behind,
        if figures.caught_up { "" } else { " (gave up waiting)" },
    );
    if let Some(error) = reports.iter().find_map(|r| r.last_error.as_deref()) {
        let _ = writeln!(md, "- A client's last error: {error}");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_sdks_full_jitter() {
        let backoff = Backoff { min_ms: 500, max_ms: 20_000 };
        for _ in 0..200 {
            let first = backoff.delay(0).as_millis();
            assert!((500..=1000).contains(&first), "attempt 0 waits 500..=1000 ms, got {first}");
            let later = backoff.delay(10).as_millis();
            assert!((500..=20_000).contains(&later), "capped at max, got {later}");
        }
        assert_eq!(Backoff { min_ms: 0, max_ms: 20_000 }.delay(3), Duration::ZERO);
    }

    #[test]
    fn next_node_never_picks_the_node_it_left() {
        for from in 0..3 {
            let picks: std::collections::BTreeSet<usize> = (0..10).map(|s| next_node(from, s, 3)).collect();
            assert!(!picks.contains(&from));
            assert_eq!(picks.len(), 2, "spreads over both others");
        }
    }
}
