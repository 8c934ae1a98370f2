//! Reports: a JSON document per run (stable field names, read back by `compare`) and a Markdown
//! rendering of it.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::codec::Protocol;
use crate::stats::{Loss, Percentiles};

/// One connection ramp.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RampReport {
    /// What the ramp was (e.g. `jwt #1`); empty: numbered in tables.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub connections: u64,
    pub failed: u64,
    pub seconds: f64,
    /// Successful connect+subscribe per second over the ramp.
    pub rate_per_s: f64,
    /// Time from TCP connect to the last subscribe reply.
    pub latency: Percentiles,
    /// Server CPU per successful connect+subscribe.
    #[serde(default)]
    pub server_cpu_us_per_conn: Option<f64>,
    /// Server and loader CPU during the ramp, % of one core.
    #[serde(default)]
    pub server_cpu_percent: Option<f64>,
    #[serde(default)]
    pub loader_cpu_percent: Option<f64>,
}

/// The idle hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IdleReport {
    pub connections: u64,
    pub channels_per_conn: usize,
    pub hold_secs: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_after_ramp_kib: Option<u64>,
    pub rss_after_hold_kib: Option<u64>,
    /// (RSS after hold − RSS before ramp) / connections.
    pub rss_per_conn_bytes: Option<f64>,
    /// Kernel slab growth (both socket ends live on this machine) per connection.
    pub slab_per_conn_bytes: Option<f64>,
    /// Server CPU during the hold, µs per second per connection.
    pub idle_cpu_us_per_s_per_conn: Option<f64>,
    pub pings_answered: u64,
    pub dropped: u64,
}

/// One measured publishing step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    pub subscribers: u64,
    /// Requests per second asked for (0 = as fast as possible).
    pub target_rate: f64,
    pub seconds: f64,
    pub publishes: u64,
    pub publishes_per_s: f64,
    pub publish_errors: u64,
    pub expected_deliveries: u64,
    pub deliveries: u64,
    pub deliveries_per_s: f64,
    pub lost: u64,
    /// Publish → deliver.
    pub latency: Percentiles,
    /// HTTP API round trip.
    pub api_latency: Percentiles,
    pub server_cpu_us: Option<u64>,
    pub server_cpu_percent: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub server_cpu_us_per_publish: Option<f64>,
    /// The loader's own CPU over the step, % of one core (near 100: the loader was the limit).
    #[serde(default)]
    pub loader_cpu_percent: Option<f64>,
    /// The target rate was not reached (publishes/s under 90% of it): the step measured the
    /// rate the node (or the loader) could sustain instead.
    #[serde(default)]
    pub saturated: bool,
}

/// Whether `achieved` requests/s fall short of `target` (0 = as fast as possible: never short).
pub fn short_of_rate(target: f64, achieved: f64) -> bool {
    target > 0.0 && achieved < 0.9 * target
}

/// Connection counters over the whole run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    pub connected: u64,
    pub connect_failed: u64,
    pub dropped: u64,
    pub pings_answered: u64,
    pub decode_errors: u64,
    pub deliveries: u64,
    pub publishes: u64,
    pub publish_errors: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub tool: String,
    pub label: String,
    pub scenario: String,
    #[serde(default)]
    pub tag: String,
    pub protocol: Protocol,
    pub addr: String,
    /// Measured server processes (CPU and RSS are their sums).
    #[serde(default)]
    pub server_pids: Vec<u32>,
    pub unix_time: u64,
    pub params: serde_json::Value,
    pub ramps: Vec<RampReport>,
    pub idle: Option<IdleReport>,
    pub steps: Vec<StepReport>,
    pub loss: Loss,
    pub totals: Totals,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
    /// A scenario's own summary (Markdown), printed after its tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// A scenario's own figures that fit no table (e.g. `storm`'s), machine-readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<serde_json::Value>,
}

impl Report {
    /// Writes `LABEL-SCENARIO.json` and `.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let stem = dir.join(format!("{}-{}", self.label, self.key()));
        let json = serde_json::to_string_pretty(self).map_err(|e| format!("encode report: {e}"))?;
        std::fs::write(stem.with_extension("json"), json).map_err(|e| format!("write report: {e}"))?;
        std::fs::write(stem.with_extension("md"), self.markdown()).map_err(|e| format!("write report: {e}"))
    }

    /// Scenario name plus tag: what `compare` matches reports by.
    pub fn key(&self) -> String {
        if self.tag.is_empty() {
            self.scenario.clone()
        } else {
            format!("{}-{}", self.scenario, self.tag)
        }
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "### {} — {} ({:?}, {})\n\n",
            self.key(),
            self.label,
            self.protocol,
            if self.server_pids.is_empty() {
                "no server pid".to_owned()
            } else {
                format!("pid {:?}", self.server_pids)
            }
        );
        if !self.ramps.is_empty() {
            md += &ramps_table(&self.ramps);
        }
        if let Some(idle) = &self.idle {
            md += &idle_table(idle);
        }
        if !self.steps.is_empty() {
            md += &steps_table(&self.steps);
        }
        if let Some(summary) = &self.summary {
            md += summary;
            md += "\n";
        }
        let t = &self.totals;
        let _ = writeln!(
            md,
            "Connections {} (failed {}, dropped {}), pings answered {}, deliveries {}, publishes {} (errors {}), \
             lost {} of {} expected ({} subscribers missed some).\n",
            t.connected,
            t.connect_failed,
            t.dropped,
            t.pings_answered,
            t.deliveries,
            t.publishes,
            t.publish_errors,
            self.loss.lost,
            self.loss.expected,
            self.loss.subscribers_with_loss
        );
        for note in &self.notes {
            let _ = writeln!(md, "- {note}");
        }
        for error in &self.errors {
            let _ = writeln!(md, "- error: `{error}`");
        }
        md
    }
}

pub fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("–".into(), |v| format!("{v:.decimals$}"))
}

fn ramps_table(ramps: &[RampReport]) -> String {
    let mut md = "| ramp | connected | failed | seconds | connect+subscribe /s | connect p50 ms | p99 ms | max ms | server CPU µs/conn | server CPU % | loader CPU % |\n\
                  |---|---|---|---|---|---|---|---|---|---|---|\n"
        .to_owned();
    for (i, r) in ramps.iter().enumerate() {
        let name = if r.name.is_empty() { (i + 1).to_string() } else { r.name.clone() };
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            r.connections,
            r.failed,
            r.seconds,
            r.rate_per_s,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            opt(r.server_cpu_us_per_conn, 1),
            opt(r.server_cpu_percent, 0),
            opt(r.loader_cpu_percent, 0)
        );
    }
    md + "\n"
}

fn idle_table(idle: &IdleReport) -> String {
    let kib = |v: Option<u64>| v.map_or("–".into(), |v| v.to_string());
    format!(
        "| connections | channels/conn | hold s | RSS before KiB | after ramp KiB | after hold KiB | **RSS/conn bytes** | slab/conn bytes | idle CPU µs/s/conn | pings answered |\n\
         |---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {:.0} | {} | {} | {} | **{}** | {} | {} | {} |\n\n",
        idle.connections,
        idle.channels_per_conn,
        idle.hold_secs,
        kib(idle.rss_before_kib),
        kib(idle.rss_after_ramp_kib),
        kib(idle.rss_after_hold_kib),
        opt(idle.rss_per_conn_bytes, 0),
        opt(idle.slab_per_conn_bytes, 0),
        opt(idle.idle_cpu_us_per_s_per_conn, 3),
        idle.pings_answered
    )
}

fn steps_table(steps: &[StepReport]) -> String {
    let mut md = "| step | subs | rate | publishes/s | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | API p99 ms | server CPU % | CPU µs/delivery | CPU µs/publish | lost | loader CPU % |\n\
                  |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        .to_owned();
    for s in steps {
        let mut rate = if s.target_rate > 0.0 { format!("{:.0}", s.target_rate) } else { "max".into() };
        if s.saturated {
            rate.push_str(" (saturated)");
        }
        let _ = writeln!(
            md,
            "| {} | {} | {rate} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
            s.name,
            s.subscribers,
            s.publishes_per_s,
            s.deliveries_per_s,
            s.latency.p50_ms,
            s.latency.p90_ms,
            s.latency.p99_ms,
            s.latency.max_ms,
            s.api_latency.p99_ms,
            opt(s.server_cpu_percent, 0),
            opt(s.server_cpu_us_per_delivery, 2),
            opt(s.server_cpu_us_per_publish, 1),
            s.lost,
            opt(s.loader_cpu_percent, 0)
        );
    }
    md + "\n"
}
