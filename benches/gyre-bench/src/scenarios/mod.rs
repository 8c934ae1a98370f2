//! Scenarios: each builds a `Run`, ramps connections, runs publishing steps and returns a report.

pub mod channels;
pub mod cluster;
pub mod fanout;
pub mod history;
pub mod idle;
pub mod proxy;
pub mod storm;

use std::sync::atomic::Ordering::Relaxed;

use crate::clock;
use crate::engine::Run;
use crate::report::{IdleReport, RampReport, Report, StepReport, Totals};

/// What a scenario measured, before the run's totals are added.
#[derive(Default)]
pub struct Outcome {
    pub params: serde_json::Value,
    pub ramps: Vec<RampReport>,
    pub idle: Option<IdleReport>,
    pub steps: Vec<StepReport>,
    pub notes: Vec<String>,
    /// Markdown printed after the tables.
    pub summary: Option<String>,
    /// Figures that fit no table, machine-readable (`Report::results`).
    pub results: Option<serde_json::Value>,
}

/// The report of a finished run.
pub fn report(run: &Run, scenario: &str, outcome: Outcome) -> Report {
    let stats = &run.stats;
    let totals = Totals {
        connected: stats.connected.load(Relaxed),
        connect_failed: stats.connect_failed.load(Relaxed),
        dropped: stats.disconnected.load(Relaxed),
        pings_answered: stats.pings.load(Relaxed),
        decode_errors: stats.decode_errors.load(Relaxed),
        deliveries: stats.delivered.load(Relaxed),
        publishes: stats.published.load(Relaxed),
        publish_errors: stats.publish_errors.load(Relaxed),
    };
    Report {
        tool: concat!("gyre-bench ", env!("CARGO_PKG_VERSION")).into(),
        label: run.common.label.clone(),
        scenario: scenario.into(),
        tag: run.common.tag.clone(),
        protocol: run.common.protocol,
        addr: run.common.addr.clone(),
        server_pids: run.common.server_pid.clone(),
        unix_time: clock::unix_secs(),
        params: outcome.params,
        ramps: outcome.ramps,
        idle: outcome.idle,
        steps: outcome.steps,
        loss: run.loss(),
        totals,
        errors: stats.errors(),
        notes: outcome.notes,
        summary: outcome.summary,
        results: outcome.results,
    }
}

/// Connection specs `first..first+count` for user names `PREFIX<i>`, channels from `channels_of`.
pub fn specs(
    first: usize,
    count: usize,
    prefix: &str,
    channels_of: impl Fn(usize) -> Vec<u32>,
) -> Vec<crate::conn::ConnSpec> {
    (first..first + count)
        .map(|index| crate::conn::ConnSpec { index, user: format!("{prefix}{index}"), channels: channels_of(index) })
        .collect()
}
