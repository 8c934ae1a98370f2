//! `channels`: the million-connection shape scaled down. Every connection subscribes to its
//! personal channel and to one group channel of `group_size` members; publications go to random
//! channels through `/api/publish`, then in batches through `/api/broadcast`.

use crate::cli::ChannelsArgs;
use crate::engine::{Run, StepSpec};
use crate::publisher::Targets;
use crate::report::Report;

use super::{report, specs, Outcome};

pub async fn run(args: ChannelsArgs) -> Result<Report, String> {
    let conns = args.conns;
    let group_size = args.group_size.max(1);
    let groups = conns.div_ceil(group_size);
    let channels: Vec<String> =
        (0..conns).map(|i| format!("p{i}")).chain((0..groups).map(|g| format!("g{g}"))).collect();
    let all = channels.len() as u32;
    let mut run = Run::new(&args.common, channels, conns)?;
    let target = run.target.clone();
    let mut outcome = Outcome::default();
    run.phase.set(format!("ramp to {conns}"));
    let channels_of = |i: usize| vec![i as u32, (conns + i / group_size) as u32];
    outcome.ramps.push(run.ramp(&target, specs(0, conns, "ch", channels_of)).await?);
    for &rate in &args.rates {
        let name = format!("publish @{rate}/s");
        outcome.steps.push(run.step(StepSpec { name, rate, targets: Targets::Random { first: 0, count: all } }).await?);
    }
    let batch = args.batch.max(1) as u32;
    for &rate in &args.broadcast_rates {
        let name = format!("broadcast ×{batch} @{rate} ch/s");
        let targets = Targets::Broadcast { first: 0, count: all, batch };
        outcome.steps.push(run.step(StepSpec { name, rate: rate / batch as f64, targets }).await?);
    }
    outcome.params = serde_json::json!({
        "conns": conns, "group_size": group_size, "channels": all, "rates": args.rates,
        "broadcast_rates": args.broadcast_rates, "batch": batch, "publishers": args.common.publishers,
        "step_secs": args.common.step_secs, "warmup_secs": args.common.warmup_secs,
    });
    outcome.notes.push(format!(
        "{conns} connections × (personal + group of {group_size}); {all} channels; broadcast steps count requests as publishes"
    ));
    Ok(report(&run, "channels", outcome))
}
