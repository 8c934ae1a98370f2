//! `fanout`: N subscribers on one channel, one HTTP publish per publication, stepped rates per N.
//! Connections are added between subscriber counts, so 1 → 100 → 1000 reuses the first ones.

use crate::cli::FanoutArgs;
use crate::engine::{Run, StepSpec};
use crate::publisher::Targets;
use crate::report::Report;

use super::{report, specs, Outcome};

/// Deliveries/s the default rates aim at for N > 1 (2 cores: ~50–100k/s saturates the box).
const DEFAULT_DELIVERY_RATES: [f64; 4] = [10_000.0, 25_000.0, 50_000.0, 100_000.0];

pub async fn run(args: FanoutArgs) -> Result<Report, String> {
    let mut counts = args.subscribers.clone();
    counts.sort_unstable();
    counts.dedup();
    let most = counts.last().copied().ok_or("--subscribers is empty")?;
    let mut run = Run::new(&args.common, vec![args.channel.clone()], most)?;
    let target = run.target.clone();
    let mut outcome = Outcome::default();
    for &n in &counts {
        let have = run.connections();
        run.phase.set(format!("ramp to N={n}"));
        outcome.ramps.push(run.ramp(&target, specs(have, n - have, "fan", |_| vec![0])).await?);
        let rates = if args.rates.is_empty() { default_rates(n) } else { args.rates.clone() };
        let mut first_p99 = None;
        for rate in rates {
            let step = run.step(StepSpec { name: format!("N={n} @{rate}/s"), rate, targets: Targets::One(0) }).await?;
            let p99 = step.latency.p99_ms;
            let (short, reached) = (step.saturated, step.publishes_per_s);
            outcome.steps.push(step);
            if short {
                outcome.notes.push(format!(
                    "N={n}: stopped stepping at {rate}/s: the step reached only {reached:.0} publishes/s (saturated)"
                ));
                break;
            }
            let base = *first_p99.get_or_insert(p99);
            if saturated(p99, base, args.stop_p99_ms) {
                outcome.notes.push(format!(
                    "N={n}: stopped stepping at {rate}/s (p99 {p99:.1} ms > {} ms and > 2 × the first rate's {base:.1} ms)",
                    args.stop_p99_ms
                ));
                break;
            }
        }
    }
    outcome.params = serde_json::json!({
        "subscribers": counts, "rates": args.rates, "stop_p99_ms": args.stop_p99_ms,
        "step_secs": args.common.step_secs, "warmup_secs": args.common.warmup_secs,
        "payload": args.common.payload, "publishers": args.common.publishers,
    });
    outcome.notes.push("CPU µs/delivery = server utime+stime over the measured step and its drain / deliveries received in that window".into());
    Ok(report(&run, "fanout", outcome))
}

/// A step is saturated when its p99 is over the limit and has at least doubled since the N's
/// first (lowest) rate: one publication to 10,000 subscribers takes longer than 50 ms to write
/// out on one core at any rate, so the limit alone would stop every large N at once.
fn saturated(p99: f64, first_p99: f64, limit: f64) -> bool {
    p99 > limit && p99 > 2.0 * first_p99
}

/// Publications/s for N subscribers: 200/s first for N = 1 (the latency floor), else rates
/// giving 10k, 25k, 50k and 100k deliveries/s.
pub fn default_rates(n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![200.0, 1000.0, 5000.0];
    }
    let mut rates: Vec<f64> = DEFAULT_DELIVERY_RATES.iter().map(|d| (d / n as f64).floor().max(1.0)).collect();
    rates.dedup();
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rates_scale_with_subscribers() {
        assert_eq!(default_rates(1), [200.0, 1000.0, 5000.0]);
        assert_eq!(default_rates(1000), [10.0, 25.0, 50.0, 100.0]);
        assert_eq!(default_rates(10_000), [1.0, 2.0, 5.0, 10.0]);
        assert_eq!(default_rates(50_000), [1.0, 2.0]);
    }

    #[test]
    fn saturation_needs_the_limit_and_growth() {
        assert!(!saturated(40.0, 1.0, 50.0));
        assert!(saturated(60.0, 1.0, 50.0));
        assert!(!saturated(600.0, 540.0, 50.0));
        assert!(saturated(1200.0, 540.0, 50.0));
    }
}
