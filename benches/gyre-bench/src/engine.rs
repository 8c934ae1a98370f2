//! A run: the connections opened so far, the publisher pool, the server's /proc probe, and the
//! two operations every scenario is made of — ramp up connections, run one publishing step.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::cli::Common;
use crate::conn::{self, ConnCtx, ConnSpec};
use crate::http::HttpConn;
use crate::jwt::Minter;
use crate::procstat::{self, Server};
use crate::progress::Phase;
use crate::publisher::{self, Plan, PubCtx, Targets};
use crate::report::{self, RampReport, StepReport};
use crate::stats::{Loss, Stats, MAX_STEPS, WARMUP_STEP};
use crate::target::{Sources, Target};

/// Token lifetime: longer than any run.
const TOKEN_TTL_SECS: u64 = 24 * 3600;

struct Open {
    spec: ConnSpec,
    /// Publications already made to its channels when it subscribed.
    base: u64,
    task: JoinHandle<()>,
}

/// One publishing step as a scenario asks for it.
pub struct StepSpec {
    pub name: String,
    pub rate: f64,
    pub targets: Targets,
}

pub struct Run {
    pub common: Common,
    pub target: Target,
    pub stats: Arc<Stats>,
    pub server: Server,
    pub phase: Phase,
    /// Connections opened by `ramp` connect without a token (`connect-rate --auth tokenless`).
    pub tokenless: bool,
    channels: Arc<Vec<String>>,
    /// Subscribers per channel, for the deliveries a step should produce.
    channel_subs: Vec<u64>,
    open: Vec<Open>,
    pool: Vec<HttpConn>,
    pub_ctx: Arc<PubCtx>,
    next_step: u32,
    closed_loss: Loss,
}

impl Run {
    /// `connections`: how many the run will open in total (sizes the per-connection counters).
    pub fn new(common: &Common, channels: Vec<String>, connections: usize) -> Result<Run, String> {
        if connections > common.max_conns {
            return Err(format!("{connections} connections asked for, --max-conns is {}", common.max_conns));
        }
        let target = Target::parse(&common.addr)?;
        let stats = Arc::new(Stats::new(connections, channels.len()));
        let channels = Arc::new(channels);
        let sources = Sources::new(&target, common.source_ips);
        let pool = (0..common.publishers.max(1))
            .map(|i| HttpConn::new(target.clone(), sources.pick(i), &common.api_key))
            .collect();
        let pub_ctx =
            Arc::new(PubCtx { channels: channels.clone(), stats: stats.clone(), padding: "x".repeat(common.payload) });
        let phase = Phase::default();
        if !common.quiet {
            crate::progress::spawn(common.label.clone(), stats.clone(), phase.clone());
        }
        Ok(Run {
            common: common.clone(),
            target,
            server: Server { pids: common.server_pid.clone() },
            channel_subs: vec![0; channels.len()],
            channels,
            stats,
            phase,
            tokenless: false,
            open: Vec::new(),
            pool,
            pub_ctx,
            next_step: 0,
            closed_loss: Loss::default(),
        })
    }

    pub fn connections(&self) -> usize {
        self.open.len()
    }

    /// What the connections opened against `target` share.
    pub fn conn_ctx(&self, target: &Target) -> Arc<ConnCtx> {
        Arc::new(ConnCtx {
            protocol: self.common.protocol,
            transport: self.common.transport,
            target: target.clone(),
            sources: Sources::new(target, self.common.source_ips),
            minter: Minter::new(&self.common.secret, TOKEN_TTL_SECS),
            tokenless: self.tokenless,
            channels: self.channels.clone(),
            stats: self.stats.clone(),
        })
    }

    /// Opens `specs` against `target` at ≤ `--connect-rate`/s with ≤ `--connect-concurrency` in
    /// flight, and waits until each is subscribed or has failed.
    pub async fn ramp(&mut self, target: &Target, specs: Vec<ConnSpec>) -> Result<RampReport, String> {
        let count = specs.len();
        let ctx = self.conn_ctx(target);
        let stats = &self.stats;
        stats.connect_latency.reset();
        let (ok_before, failed_before) = (stats.connected.load(Relaxed), stats.connect_failed.load(Relaxed));
        let (server_cpu, loader_cpu) = (self.server.cpu(), procstat::loader_cpu());
        let in_flight = Arc::new(Semaphore::new(self.common.connect_concurrency.max(1)));
        let per_tick = (self.common.connect_rate / 100).max(1);
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        let started = Instant::now();
        let first_new = self.open.len();
        for (k, spec) in specs.into_iter().enumerate() {
            if k % per_tick == 0 {
                ticker.tick().await;
            }
            let permit = in_flight.clone().acquire_owned().await.map_err(|e| format!("connect limiter: {e}"))?;
            for &ch in &spec.channels {
                if let Some(subs) = self.channel_subs.get_mut(ch as usize) {
                    *subs += 1;
                }
            }
            let task = tokio::spawn(conn::run(ctx.clone(), spec.clone(), permit));
            self.open.push(Open { spec, base: 0, task });
        }
        loop {
            let ok = stats.connected.load(Relaxed) - ok_before;
            let failed = stats.connect_failed.load(Relaxed) - failed_before;
            if ok + failed >= count as u64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let (server_now, loader_now) = (self.server.cpu(), procstat::loader_cpu());
        for open in &mut self.open[first_new..] {
            open.base = stats.published_to(&open.spec.channels);
        }
        let ok = stats.connected.load(Relaxed) - ok_before;
        let failed = stats.connect_failed.load(Relaxed) - failed_before;
        if ok == 0 && count > 0 {
            return Err(format!("no connection succeeded; first errors: {:?}", stats.errors()));
        }
        Ok(RampReport {
            name: String::new(),
            connections: ok,
            failed,
            seconds,
            rate_per_s: ok as f64 / seconds.max(1e-9),
            latency: stats.connect_latency.percentiles(),
            server_cpu_us_per_conn: server_now.since(&server_cpu).0.filter(|_| ok > 0).map(|us| us as f64 / ok as f64),
            server_cpu_percent: server_now.percent_since(&server_cpu),
            loader_cpu_percent: loader_now.percent_since(&loader_cpu),
        })
    }

    /// Closes every open connection (their tasks are aborted, sockets dropped); their loss
    /// so far stays in the run's total.
    pub fn close_all(&mut self) {
        self.closed_loss = self.loss();
        for open in self.open.drain(..) {
            open.task.abort();
            for &ch in &open.spec.channels {
                if let Some(subs) = self.channel_subs.get_mut(ch as usize) {
                    *subs = subs.saturating_sub(1);
                }
            }
        }
    }

    /// Warm-up (`--warmup-secs`, not measured) then `--step-secs` measured at `spec.rate`,
    /// then waits for the step's deliveries to arrive.
    pub async fn step(&mut self, spec: StepSpec) -> Result<StepReport, String> {
        let warmup = Duration::from_secs_f64(self.common.warmup_secs);
        let measure = Duration::from_secs_f64(self.common.step_secs);
        if !warmup.is_zero() {
            self.phase.set(format!("{} warm-up", spec.name));
            let (published_before, delivered_before) =
                (self.published_per_channel(), self.stats.delivered.load(Relaxed));
            self.publish(Plan { step: WARMUP_STEP, rate: spec.rate, duration: warmup, targets: spec.targets.clone() })
                .await;
            let expected = self.expected_deliveries(&published_before);
            self.drain(|stats| stats.delivered.load(Relaxed) - delivered_before, expected).await;
        }
        let step = self.next_step;
        if step as usize >= MAX_STEPS {
            return Err(format!("more than {MAX_STEPS} steps in one run"));
        }
        self.next_step += 1;
        self.phase.set(spec.name.clone());
        let stats = self.stats.clone();
        let published_before = self.published_per_channel();
        let (publishes_before, errors_before) = (stats.published.load(Relaxed), stats.publish_errors.load(Relaxed));
        let (delivered_before, cpu_before) = (stats.delivered.load(Relaxed), self.server.cpu());
        let loader_before = procstat::loader_cpu();
        self.publish(Plan { step, rate: spec.rate, duration: measure, targets: spec.targets }).await;
        let expected = self.expected_deliveries(&published_before);
        self.drain(|stats| stats.latency[step as usize].percentiles().count, expected).await;
        let (cpu_us, window_secs) = self.server.cpu().since(&cpu_before);
        let loader_cpu_percent = procstat::loader_cpu().percent_since(&loader_before);
        let publishes = stats.published.load(Relaxed) - publishes_before;
        let latency = stats.latency[step as usize].percentiles();
        let window_deliveries = stats.delivered.load(Relaxed) - delivered_before;
        Ok(StepReport {
            name: spec.name,
            subscribers: self.open.len() as u64,
            target_rate: spec.rate,
            seconds: measure.as_secs_f64(),
            publishes,
            publishes_per_s: publishes as f64 / measure.as_secs_f64(),
            publish_errors: stats.publish_errors.load(Relaxed) - errors_before,
            expected_deliveries: expected,
            deliveries: latency.count,
            deliveries_per_s: latency.count as f64 / measure.as_secs_f64(),
            lost: expected.saturating_sub(latency.count),
            latency,
            api_latency: stats.api_latency[step as usize].percentiles(),
            server_cpu_us: cpu_us,
            server_cpu_percent: cpu_us.map(|us| us as f64 / window_secs / 1e4),
            server_cpu_us_per_delivery: cpu_us
                .filter(|_| window_deliveries > 0)
                .map(|us| us as f64 / window_deliveries as f64),
            server_cpu_us_per_publish: cpu_us.filter(|_| publishes > 0).map(|us| us as f64 / publishes as f64),
            loader_cpu_percent,
            saturated: report::short_of_rate(spec.rate, publishes as f64 / measure.as_secs_f64()),
        })
    }

    async fn publish(&mut self, plan: Plan) {
        let pool = std::mem::take(&mut self.pool);
        self.pool = publisher::run_step(&self.pub_ctx, pool, &plan).await;
    }

    fn published_per_channel(&self) -> Vec<u64> {
        self.stats.channel_published.iter().map(|c| c.load(Relaxed)).collect()
    }

    fn expected_deliveries(&self, before: &[u64]) -> u64 {
        let after = self.published_per_channel();
        after.iter().zip(before).zip(&self.channel_subs).map(|((a, b), subs)| (a - b) * subs).sum()
    }

    /// Waits until `count` reaches `expected`, or has not moved for 2 s (at most 20 s).
    async fn drain(&self, count: impl Fn(&Stats) -> u64, expected: u64) {
        let started = Instant::now();
        let (mut last, mut last_change) = (count(&self.stats), Instant::now());
        while started.elapsed() < Duration::from_secs(20) && last_change.elapsed() < Duration::from_secs(2) {
            if last >= expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = count(&self.stats);
            if now != last {
                (last, last_change) = (now, Instant::now());
            }
        }
    }

    /// Per-subscriber loss over the whole run (publications to its channels since it subscribed).
    pub fn loss(&self) -> Loss {
        let mut loss = self.closed_loss;
        for open in &self.open {
            let expected = self.stats.published_to(&open.spec.channels) - open.base;
            let received = self.stats.received.get(open.spec.index).map_or(0, |r| r.load(Relaxed));
            loss.add_subscriber(expected, received);
        }
        loss
    }
}
