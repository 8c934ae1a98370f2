//! `cluster`: publishes always go to node A (`--addr`). First the subscribers sit on A too, then
//! they move to node B (`--addr2`); the difference in latency is the cost of the broker hop.

use std::fmt::Write as _;

use crate::cli::ClusterArgs;
use crate::engine::{Run, StepSpec};
use crate::publisher::Targets;
use crate::report::{Report, StepReport};
use crate::target::Target;

use super::{report, specs, Outcome};

pub async fn run(args: ClusterArgs) -> Result<Report, String> {
    let n = args.subscribers;
    let node_b = Target::parse(&args.addr2)?;
    let mut run = Run::new(&args.common, vec!["cl-same".into(), "cl-cross".into()], 2 * n)?;
    let node_a = run.target.clone();
    let mut outcome = Outcome::default();
    for (phase, node, channel) in [("same-node", &node_a, 0u32), ("cross-node", &node_b, 1)] {
        run.phase.set(format!("{phase}: ramp {n}"));
        let first = if channel == 0 { 0 } else { n };
        outcome.ramps.push(run.ramp(node, specs(first, n, phase, |_| vec![channel])).await?);
        for &rate in &args.rates {
            let name = format!("{phase} N={n} @{rate}/s");
            outcome.steps.push(run.step(StepSpec { name, rate, targets: Targets::One(channel) }).await?);
        }
        run.close_all();
    }
    outcome.notes = deltas(&outcome.steps, args.rates.len());
    outcome.params = serde_json::json!({
        "addr2": args.addr2, "subscribers": n, "rates": args.rates,
        "step_secs": args.common.step_secs, "warmup_secs": args.common.warmup_secs,
    });
    Ok(report(&run, "cluster", outcome))
}

/// "cross − same" latency per rate (steps are `rates` same-node ones, then as many cross-node).
fn deltas(steps: &[StepReport], rates: usize) -> Vec<String> {
    let mut notes = Vec::new();
    for (same, cross) in steps.iter().take(rates).zip(steps.iter().skip(rates)) {
        let mut note = format!("{} → {}: ", same.name, cross.name);
        let _ = write!(
            note,
            "cross-node minus same-node latency p50 {:+.3} ms, p99 {:+.3} ms",
            cross.latency.p50_ms - same.latency.p50_ms,
            cross.latency.p99_ms - same.latency.p99_ms
        );
        notes.push(note);
    }
    notes
}
