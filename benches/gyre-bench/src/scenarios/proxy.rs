//! The proxy benchmarks (run them against a server whose proxies call `gyre-bench proxy-backend`):
//!
//! * `connect-rate`: rounds of N connects (WebSocket upgrade + `connect`, no subscribe) at
//!   ≤ `--connect-concurrency` in flight, one ramp per `--auth` mode per round (`jwt`: an HS256
//!   token; `tokenless`: no token, so the server asks its connect proxy). A round's connections
//!   are closed before the next ramp.
//! * `publish-latency`: one JWT connection sends client `publish` commands (one in flight, at
//!   `--rate`/s) into `NAMESPACE:CHANNEL` for each of `--namespaces` in turn, while
//!   `--subscribers` connections per channel receive them. Per step: the command's reply time
//!   (send → reply read) and publish → subscriber latency (the publish time travels in the data).

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::cli::{Auth, ConnectRateArgs, PublishLatencyArgs};
use crate::clock;
use crate::codec::{v2, Incoming, Protocol};
use crate::conn::{self, ConnSpec, Link};
use crate::engine::Run;
use crate::procstat::{self, Server};
use crate::report::{self, opt, Report, StepReport};
use crate::stats::{Hist, Stats, MAX_STEPS, WARMUP_STEP};
use crate::ws::Received;

use super::{report, specs, Outcome};

const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// µs of CPU per operation over several windows: Σ CPU / Σ operations.
#[derive(Default, Clone, Copy)]
struct CpuPer {
    cpu_us: u64,
    ops: u64,
    known: bool,
}

impl CpuPer {
    fn add(&mut self, cpu_us: Option<u64>, ops: u64) {
        if let Some(us) = cpu_us {
            self.cpu_us += us;
            self.known = true;
        }
        self.ops += ops;
    }

    fn per_op(&self) -> Option<f64> {
        (self.known && self.ops > 0).then(|| self.cpu_us as f64 / self.ops as f64)
    }
}

fn backend(pid: Option<u32>) -> Server {
    Server { pids: pid.into_iter().collect() }
}

pub async fn connect_rate(args: ConnectRateArgs) -> Result<Report, String> {
    let modes = if args.tokenless { vec![Auth::Tokenless] } else { args.auth.clone() };
    if modes.is_empty() {
        return Err("--auth names no mode".into());
    }
    let (conns, rounds) = (args.conns.max(1), args.rounds.max(1));
    // Every ramp reuses connection numbers 0..conns (its connections are closed before the next).
    let mut run = Run::new(&args.common, Vec::new(), conns.max(args.warmup_conns))?;
    let target = run.target.clone();
    let backend = backend(args.backend_pid);
    let settle = Duration::from_secs_f64(args.settle_secs.max(0.0));
    let mut outcome = Outcome::default();

    for &mode in &modes {
        if args.warmup_conns > 0 {
            run.tokenless = mode == Auth::Tokenless;
            run.phase.set(format!("warm-up {}", mode.name()));
            run.ramp(&target, specs(0, args.warmup_conns, "warm", |_| Vec::new())).await?;
            run.close_all();
            tokio::time::sleep(settle).await;
        }
    }

    let latency: Vec<Hist> = modes.iter().map(|_| Hist::default()).collect();
    let mut server_cpu = vec![CpuPer::default(); modes.len()];
    let mut backend_cpu = vec![CpuPer::default(); modes.len()];
    let mut totals = vec![(0u64, 0u64, 0f64); modes.len()];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 1..=rounds {
        for (m, &mode) in modes.iter().enumerate() {
            run.tokenless = mode == Auth::Tokenless;
            let name = format!("{} #{round}", mode.name());
            run.phase.set(name.clone());
            let (server_before, backend_before) = (run.server.cpu(), backend.cpu());
            let mut ramp = run.ramp(&target, specs(0, conns, mode.name(), |_| Vec::new())).await?;
            let (server_us, _) = run.server.cpu().since(&server_before);
            let (backend_us, _) = backend.cpu().since(&backend_before);
            ramp.name = name;
            latency[m].add(&run.stats.connect_latency);
            server_cpu[m].add(server_us, ramp.connections);
            backend_cpu[m].add(backend_us.filter(|_| args.backend_pid.is_some()), ramp.connections);
            totals[m].0 += ramp.connections;
            totals[m].1 += ramp.failed;
            totals[m].2 += ramp.seconds;
            rates[m].push(ramp.rate_per_s);
            outcome.ramps.push(ramp);
            run.close_all();
            tokio::time::sleep(settle).await;
        }
    }

    let mut summary =
        "| auth | rounds × connects | failed | connects/s (all rounds) | per round | connect p50 ms | p90 ms | p99 ms | max ms | server CPU µs/connect | backend CPU µs/connect |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n"
        .to_owned();
    for (m, mode) in modes.iter().enumerate() {
        let (ok, failed, seconds) = totals[m];
        let p = latency[m].percentiles();
        let per_round: Vec<String> = rates[m].iter().map(|r| format!("{r:.0}")).collect();
        summary += &format!(
            "| {} | {rounds} × {conns} | {failed} | **{:.0}** | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            mode.name(),
            ok as f64 / seconds.max(1e-9),
            per_round.join(", "),
            p.p50_ms,
            p.p90_ms,
            p.p99_ms,
            p.max_ms,
            opt(server_cpu[m].per_op(), 1),
            opt(backend_cpu[m].per_op(), 1),
        );
    }
    outcome.summary = Some(summary);
    outcome.params = serde_json::json!({
        "conns": conns, "rounds": rounds, "auth": modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "warmup_conns": args.warmup_conns, "connect_rate": args.common.connect_rate,
        "connect_concurrency": args.common.connect_concurrency, "source_ips": args.common.source_ips,
        "backend_pid": args.backend_pid,
    });
    outcome.notes = vec![
        "a connect = TCP connect + WebSocket upgrade + `connect` command until its reply; no subscribe; latency from TCP connect to the reply".into(),
        format!(
            "at most {} connects in flight and {}/s; each ramp's connections are closed before the next ({}s pause)",
            args.common.connect_concurrency, args.common.connect_rate, args.settle_secs
        ),
        "tokenless: the connect command carries no token, so the server calls its connect proxy for every connection".into(),
    ];
    Ok(report(&run, "connect-rate", outcome))
}

/// Totals of one namespace over its steps.
#[derive(Default)]
struct NsTotals {
    reply: Hist,
    delivery: Hist,
    publishes: u64,
    errors: u64,
    lost: u64,
    server: CpuPer,
    backend: CpuPer,
}

pub async fn publish_latency(args: PublishLatencyArgs) -> Result<Report, String> {
    let protocol = args.common.protocol;
    if protocol != Protocol::V2 {
        return Err("publish-latency speaks protocol v2 JSON only (--protocol v2)".into());
    }
    if args.namespaces.is_empty() || args.rate <= 0.0 {
        return Err("publish-latency needs --namespaces and a --rate above 0".into());
    }
    let rounds = args.rounds.max(1);
    if rounds * args.namespaces.len() > MAX_STEPS {
        return Err(format!("at most {MAX_STEPS} steps (--rounds × namespaces)"));
    }
    let channels: Vec<String> = args.namespaces.iter().map(|ns| format!("{ns}:{}", args.channel)).collect();
    let n = channels.len();
    let subscribers = args.subscribers.max(1) * n;
    let mut run = Run::new(&args.common, channels.clone(), subscribers + 1)?;
    let target = run.target.clone();
    let backend = backend(args.backend_pid);
    let mut outcome = Outcome::default();

    run.phase.set(format!("ramp {subscribers} subscribers"));
    let mut ramp = run.ramp(&target, specs(0, subscribers, "sub", |i| vec![(i % n) as u32])).await?;
    ramp.name = "subscribers".into();
    outcome.ramps.push(ramp);
    let ctx = run.conn_ctx(&target);
    let publisher = ConnSpec { index: subscribers, user: "publisher".into(), channels: Vec::new() };
    let mut link = conn::open(&ctx, &publisher).await.map_err(|e| format!("publisher connection: {e}"))?;
    let mut publisher = Publisher {
        link: &mut link,
        protocol,
        stats: &run.stats,
        interval: Duration::from_secs_f64(1.0 / args.rate),
        padding: "x".repeat(args.common.payload),
        next_id: 1,
    };

    let per_channel = args.subscribers.max(1) as u64;
    let warmup = Duration::from_secs_f64(args.common.warmup_secs.max(0.0));
    let measure = Duration::from_secs_f64(args.common.step_secs.max(0.1));
    let ns_totals: Vec<NsTotals> = (0..n).map(|_| NsTotals::default()).collect();
    let mut ns_totals = ns_totals;
    let mut step = 0u32;
    for round in 1..=rounds {
        for (ch, namespace) in args.namespaces.iter().enumerate() {
            let name = format!("{namespace} #{round}");
            if !warmup.is_zero() {
                run.phase.set(format!("{name} warm-up"));
                publisher.publish_for(ch as u32, &channels[ch], WARMUP_STEP, warmup).await?;
            }
            run.phase.set(name.clone());
            let stats = &run.stats;
            let (server_before, backend_before, loader_before) =
                (run.server.cpu(), backend.cpu(), procstat::loader_cpu());
            let (ok, errors) = publisher.publish_for(ch as u32, &channels[ch], step, measure).await?;
            let expected = ok * per_channel;
            drain(stats, step, expected).await;
            let (server_us, window) = run.server.cpu().since(&server_before);
            let (backend_us, _) = backend.cpu().since(&backend_before);
            let latency = stats.latency[step as usize].percentiles();
            let api_latency = stats.api_latency[step as usize].percentiles();
            let totals = &mut ns_totals[ch];
            totals.reply.add(&stats.api_latency[step as usize]);
            totals.delivery.add(&stats.latency[step as usize]);
            totals.publishes += ok;
            totals.errors += errors;
            totals.lost += expected.saturating_sub(latency.count);
            totals.server.add(server_us, ok);
            totals.backend.add(backend_us.filter(|_| args.backend_pid.is_some()), ok);
            let seconds = measure.as_secs_f64();
            outcome.steps.push(StepReport {
                name,
                subscribers: per_channel,
                target_rate: args.rate,
                seconds,
                publishes: ok,
                publishes_per_s: ok as f64 / seconds,
                publish_errors: errors,
                expected_deliveries: expected,
                deliveries: latency.count,
                deliveries_per_s: latency.count as f64 / seconds,
                lost: expected.saturating_sub(latency.count),
                latency,
                api_latency,
                server_cpu_us: server_us,
                server_cpu_percent: server_us.map(|us| us as f64 / window / 1e4),
                server_cpu_us_per_delivery: server_us
                    .filter(|_| latency.count > 0)
                    .map(|us| us as f64 / latency.count as f64),
                server_cpu_us_per_publish: server_us.filter(|_| ok > 0).map(|us| us as f64 / ok as f64),
                loader_cpu_percent: procstat::loader_cpu().percent_since(&loader_before),
                saturated: report::short_of_rate(args.rate, ok as f64 / seconds),
            });
            step += 1;
        }
    }

    let mut summary = "| namespace | publishes | errors | lost | reply p50 ms | p90 ms | p99 ms | max ms | delivery p50 ms | p90 ms | p99 ms | max ms | server CPU µs/publish | backend CPU µs/publish |\n\
                       |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        .to_owned();
    for (namespace, t) in args.namespaces.iter().zip(&ns_totals) {
        let (r, d) = (t.reply.percentiles(), t.delivery.percentiles());
        summary += &format!(
            "| {namespace} | {} | {} | {} | **{:.3}** | {:.3} | **{:.3}** | {:.3} | **{:.3}** | {:.3} | **{:.3}** | {:.3} | {} | {} |\n",
            t.publishes,
            t.errors,
            t.lost,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            d.p50_ms,
            d.p90_ms,
            d.p99_ms,
            d.max_ms,
            opt(t.server.per_op(), 1),
            opt(t.backend.per_op(), 1),
        );
    }
    outcome.summary = Some(summary);
    outcome.params = serde_json::json!({
        "namespaces": args.namespaces, "channel": args.channel, "subscribers_per_channel": per_channel,
        "rate": args.rate, "rounds": rounds, "step_secs": args.common.step_secs,
        "warmup_secs": args.common.warmup_secs, "payload": args.common.payload, "backend_pid": args.backend_pid,
    });
    outcome.notes = vec![
        "one publishing connection (JWT), one publish command in flight; \"API\" columns = the publish command's reply time (send → reply read)".into(),
        "p50–max columns of the step table = publish → subscriber delivery (publish time in the data, CLOCK_REALTIME)".into(),
        "server CPU µs/publish counts the publish and its deliveries".into(),
    ];
    Ok(report(&run, "publish-latency", outcome))
}

/// The publishing connection.
struct Publisher<'a> {
    link: &'a mut Link,
    protocol: Protocol,
    stats: &'a Stats,
    interval: Duration,
    padding: String,
    next_id: u32,
}

impl Publisher<'_> {
    /// Publishes to `channel` (number `ch`) at the publisher's rate for `duration`, one command in
    /// flight; returns the publishes answered with success and with an error.
    async fn publish_for(
        &mut self,
        ch: u32,
        channel: &str,
        step: u32,
        duration: Duration,
    ) -> Result<(u64, u64), String> {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = Instant::now();
        let (mut ok, mut errors) = (0, 0);
        while started.elapsed() < duration {
            ticker.tick().await;
            self.next_id += 1;
            let id = self.next_id;
            let data = format!(r#"{{"t":{},"s":{step},"p":"{}"}}"#, clock::unix_nanos(), self.padding);
            let sent = Instant::now();
            self.link.send(self.protocol, v2::publish(id, channel, &data).into_bytes()).await?;
            match self.await_reply(id).await? {
                None => {
                    ok += 1;
                    if let Some(hist) = self.stats.api_latency.get(step as usize) {
                        hist.record_us(sent.elapsed().as_micros() as u64);
                    }
                    self.stats.published.fetch_add(1, Relaxed);
                    if let Some(count) = self.stats.channel_published.get(ch as usize) {
                        count.fetch_add(1, Relaxed);
                    }
                }
                Some(error) => {
                    errors += 1;
                    self.stats.publish_errors.fetch_add(1, Relaxed);
                    self.stats.note_error(format!("publish: {error}"));
                }
            }
        }
        Ok((ok, errors))
    }

    /// Reads until the reply to command `id`; `Some(error)` if the server refused it.
    async fn await_reply(&mut self, id: u32) -> Result<Option<String>, String> {
        loop {
            let frame = match tokio::time::timeout(REPLY_TIMEOUT, self.link.next()).await {
                Err(_) => return Err(format!("no reply to publish {id} within {REPLY_TIMEOUT:?}")),
                Ok(Received::Closed(why)) => return Err(format!("publisher connection: {why}")),
                Ok(Received::Text(frame)) => frame,
            };
            let (mut ping, mut reply) = (false, None);
            for message in self.protocol.decode_frame(&frame) {
                match message? {
                    Incoming::Reply { id: got, error } if got == id => {
                        reply = Some(error.map(|e| format!("{} {}", e.code, e.message)))
                    }
                    Incoming::Ping => ping = true,
                    _ => {}
                }
            }
            if ping {
                self.link.send(self.protocol, self.protocol.pong().to_vec()).await?;
            }
            if let Some(reply) = reply {
                return Ok(reply);
            }
        }
    }
}

/// Waits until step `step` has `expected` deliveries, or they stop for 2 s (at most 10 s).
async fn drain(stats: &Stats, step: u32, expected: u64) {
    let count = || stats.latency[step as usize].percentiles().count;
    let started = Instant::now();
    let (mut last, mut last_change) = (count(), Instant::now());
    while last < expected
        && started.elapsed() < Duration::from_secs(10)
        && last_change.elapsed() < Duration::from_secs(2)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = count();
        if now != last {
            (last, last_change) = (now, Instant::now());
        }
    }
}
