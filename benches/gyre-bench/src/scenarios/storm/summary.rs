//! The storm's report: machine-readable results and the Markdown summary.

use std::fmt::Write as _;

use serde_json::Value;

use crate::cli::StormArgs;

use super::client::ClientReport;

/// What the run measured, apart from the clients' own reports.
pub(super) struct Figures {
    pub(super) ramp_secs: f64,
    pub(super) storm: Storm,
    pub(super) caught_up: bool,
    pub(super) left_behind: usize,
    pub(super) published: u64,
}

/// The window from the kill until the last of the victim's clients was subscribed again.
pub(super) struct Storm {
    pub(super) victims: usize,
    pub(super) seconds: f64,
    pub(super) all_back: bool,
    /// JetStream API calls, and messages the surviving nodes sent to NATS.
    pub(super) nats: Option<(u64, u64)>,
    /// Publications made meanwhile (each is one of those messages).
    pub(super) published: u64,
    pub(super) cpu: (Option<u64>, f64),
    pub(super) loader_percent: Option<f64>,
}

/// The figures a test or a script checks: counts, and the slowest resubscribe.
pub(super) fn results(figures: &Figures, reports: &[ClientReport]) -> Value {
    let count = |f: fn(&ClientReport) -> bool| reports.iter().filter(|r| f(r)).count();
    let sum = |f: fn(&ClientReport) -> u64| reports.iter().map(f).sum::<u64>();
    let last_resubscribe = reports
        .iter()
        .filter_map(|r| r.resubscribed_ms)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    serde_json::json!({
        "victims": figures.storm.victims,
        "all_resubscribed": figures.storm.all_back,
        "resubscribed": count(|r| r.resubscribed_ms.is_some()),
        "recovered": count(|r| r.recovered == Some(true)),
        "not_recovered": count(|r| r.recovered == Some(false)),
        "last_resubscribed_ms": last_resubscribe,
        "failed_attempts": sum(|r| u64::from(r.failed_attempts)),
        "jetstream_api_calls": figures.storm.nats.map(|(calls, _)| calls),
        "survivor_nats_messages": figures.storm.nats.map(|(_, sent)| sent),
        "published_in_storm": figures.storm.published,
        "published": figures.published,
        "gaps": sum(|r| r.gaps),
        "repeats": sum(|r| r.repeats),
        "behind_at_end": figures.left_behind,
    })
}

/// When, after the kill, a client reached a step of its way back.
type Moment = fn(&ClientReport) -> Option<f64>;

pub(super) fn summary(args: &StormArgs, figures: &Figures, reports: &[ClientReport]) -> String {
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
        figures.storm.victims,
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
        figures.storm.victims,
        if figures.storm.all_back { "yes" } else { "NO" },
        figures.storm.seconds
    );
    let _ = writeln!(md, "- Failed reconnect attempts: {}.", sum(|r| r.failed_attempts as u64));
    if let Some((calls, sent)) = figures.storm.nats {
        let per = |n: u64| n as f64 / figures.storm.victims.max(1) as f64;
        let other = sent.saturating_sub(figures.storm.published);
        let _ = writeln!(
            md,
            "- During the storm: JetStream API calls {calls} ({:.2} per recovering client); messages the surviving \
             nodes sent to NATS {sent}, of which {} publications, leaving {other} ({:.2} per recovering client: \
             store reads, joins, presence, heartbeats).",
            per(calls),
            figures.storm.published,
            per(other)
        );
    }
    if let (Some(cpu_us), seconds) = figures.storm.cpu {
        let _ = writeln!(
            md,
            "- Survivors' CPU (`--server-pid`) during the storm: {:.0} ms in {seconds:.2} s ({:.0}% of one core); \
             loader {:.0}%.",
            cpu_us as f64 / 1000.0,
            cpu_us as f64 / seconds.max(1e-9) / 1e4,
            figures.storm.loader_percent.unwrap_or(0.0)
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
