//! `history`: publish throughput and HTTP API latency when every publication is appended to a
//! channel history (the server's config must enable history in `--namespace`).

use crate::cli::HistoryArgs;
use crate::engine::{Run, StepSpec};
use crate::publisher::Targets;
use crate::report::Report;

use super::{report, specs, Outcome};

pub async fn run(args: HistoryArgs) -> Result<Report, String> {
    let count = args.channels.max(1);
    let channels: Vec<String> = (0..count).map(|i| format!("{}:c{i}", args.namespace)).collect();
    let subscribers = if args.subscribe { count } else { 0 };
    let mut run = Run::new(&args.common, channels, subscribers)?;
    let target = run.target.clone();
    let mut outcome = Outcome::default();
    if subscribers > 0 {
        run.phase.set(format!("ramp {subscribers}"));
        outcome.ramps.push(run.ramp(&target, specs(0, subscribers, "hist", |i| vec![i as u32])).await?);
    }
    for &rate in &args.rates {
        let name = if rate > 0.0 { format!("history @{rate}/s") } else { "history max".into() };
        let targets = Targets::Cycle { first: 0, count: count as u32 };
        outcome.steps.push(run.step(StepSpec { name, rate, targets }).await?);
    }
    outcome.params = serde_json::json!({
        "channels": count, "namespace": args.namespace, "rates": args.rates, "subscribe": args.subscribe,
        "publishers": args.common.publishers, "step_secs": args.common.step_secs,
    });
    outcome.notes.push(format!(
        "{} keep-alive publishers; rate \"max\" = closed loop (next request when the previous one is answered)",
        args.common.publishers
    ));
    Ok(report(&run, "history", outcome))
}
