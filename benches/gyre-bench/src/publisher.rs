//! HTTP publishers: K keep-alive connections sharing one rate. Each request embeds the publish
//! time (ns, CLOCK_REALTIME) and the step number in its data so receivers can compute
//! publish → deliver latency and attribute it to the step.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock;
use crate::http::HttpConn;
use crate::stats::Stats;

/// Which channels request number `seq` goes to.
#[derive(Clone, Debug)]
pub enum Targets {
    /// `/api/publish` to one channel.
    One(u32),
    /// `/api/publish` to channels `first..first+count`, round-robin.
    Cycle { first: u32, count: u32 },
    /// `/api/publish` to a pseudo-random channel of `first..first+count`.
    Random { first: u32, count: u32 },
    /// `/api/broadcast` to `batch` consecutive channels of `first..first+count`, cycling.
    Broadcast { first: u32, count: u32, batch: u32 },
}

impl Targets {
    /// Channel numbers of request `seq`.
    pub fn pick(&self, seq: u64) -> Vec<u32> {
        match *self {
            Targets::One(ch) => vec![ch],
            Targets::Cycle { first, count } => vec![first + (seq % count.max(1) as u64) as u32],
            Targets::Random { first, count } => vec![first + (mix(seq) % count.max(1) as u64) as u32],
            Targets::Broadcast { first, count, batch } => {
                let count = count.max(1) as u64;
                (0..batch as u64).map(|k| first + ((seq * batch as u64 + k) % count) as u32).collect()
            }
        }
    }

    fn is_broadcast(&self) -> bool {
        matches!(self, Targets::Broadcast { .. })
    }
}

/// splitmix64: a cheap, well-spread hash of the request number.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One publishing step: `rate` requests/s (0 = as fast as the publishers go) for `duration`.
#[derive(Clone, Debug)]
pub struct Plan {
    pub step: u32,
    pub rate: f64,
    pub duration: Duration,
    pub targets: Targets,
}

/// What the publishers of one run share.
pub struct PubCtx {
    pub channels: Arc<Vec<String>>,
    pub stats: Arc<Stats>,
    pub padding: String,
}

/// Runs `plan` on every connection of `pool` at once; returns the pool for the next step.
pub async fn run_step(ctx: &Arc<PubCtx>, pool: Vec<HttpConn>, plan: &Plan) -> Vec<HttpConn> {
    let publishers = pool.len();
    let start = Instant::now();
    let tasks: Vec<_> = pool
        .into_iter()
        .enumerate()
        .map(|(i, conn)| tokio::spawn(publish_loop(ctx.clone(), conn, plan.clone(), i, publishers, start)))
        .collect();
    let mut pool = Vec::with_capacity(publishers);
    for task in tasks {
        match task.await {
            Ok(conn) => pool.push(conn),
            Err(e) => ctx.stats.note_error(format!("publisher task: {e}")),
        }
    }
    pool
}

/// Publisher `me` of `publishers` sends requests me, me+K, me+2K, … each at start + seq/rate,
/// until the step's time is up even if the rate was not reached (the step is then saturated).
async fn publish_loop(
    ctx: Arc<PubCtx>,
    mut conn: HttpConn,
    plan: Plan,
    me: usize,
    publishers: usize,
    start: Instant,
) -> HttpConn {
    let end = start + plan.duration;
    let mut seq = me as u64;
    loop {
        let due =
            if plan.rate > 0.0 { start + Duration::from_secs_f64(seq as f64 / plan.rate) } else { Instant::now() };
        if due >= end || Instant::now() >= end {
            break;
        }
        // Only sleep when ahead of schedule: tokio timers have 1 ms resolution, so sleeping
        // until "now" would cap a closed-loop publisher near 1,000 requests/s.
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        publish_one(&ctx, &mut conn, &plan, seq).await;
        seq += publishers as u64;
    }
    conn
}

async fn publish_one(ctx: &PubCtx, conn: &mut HttpConn, plan: &Plan, seq: u64) {
    let channels = plan.targets.pick(seq);
    let body = request_body(ctx, &channels, plan.step, plan.targets.is_broadcast());
    let path = if plan.targets.is_broadcast() { "/api/broadcast" } else { "/api/publish" };
    let sent = Instant::now();
    let stats = &ctx.stats;
    match conn.post(path, body.as_bytes()).await {
        Ok(response) if response.is_ok() => {
            if let Some(hist) = stats.api_latency.get(plan.step as usize) {
                hist.record_us(sent.elapsed().as_micros() as u64);
            }
            stats.published.fetch_add(1, Relaxed);
            for ch in channels {
                if let Some(count) = stats.channel_published.get(ch as usize) {
                    count.fetch_add(1, Relaxed);
                }
            }
        }
        Ok(response) => {
            stats.publish_errors.fetch_add(1, Relaxed);
            stats.note_error(format!("api: {path} answered {}", response.describe()));
        }
        Err(error) => {
            stats.publish_errors.fetch_add(1, Relaxed);
            stats.note_error(format!("api: {path}: {error}"));
        }
    }
}

/// `{"channel":C,"data":D}` or `{"channels":[..],"data":D}` with D = `{"t":NS,"s":STEP,"p":PAD}`.
fn request_body(ctx: &PubCtx, channels: &[u32], step: u32, broadcast: bool) -> String {
    let name =
        |ch: &u32| serde_json::Value::from(ctx.channels.get(*ch as usize).map_or("", String::as_str)).to_string();
    let data = format!(r#"{{"t":{},"s":{step},"p":"{}"}}"#, clock::unix_nanos(), ctx.padding);
    if broadcast {
        let names: Vec<String> = channels.iter().map(name).collect();
        format!(r#"{{"channels":[{}],"data":{data}}}"#, names.join(","))
    } else {
        format!(r#"{{"channel":{},"data":{data}}}"#, channels.first().map(name).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_batches_cycle_over_channels() {
        let targets = Targets::Broadcast { first: 10, count: 5, batch: 3 };
        assert_eq!(targets.pick(0), [10, 11, 12]);
        assert_eq!(targets.pick(1), [13, 14, 10]);
        let random = Targets::Random { first: 0, count: 7 };
        assert!((0..1000).all(|seq| random.pick(seq)[0] < 7));
    }

    #[test]
    fn bodies_embed_time_and_step() {
        let ctx = PubCtx {
            channels: Arc::new(vec!["a".into(), "b".into()]),
            stats: Arc::new(Stats::new(0, 2)),
            padding: "xx".into(),
        };
        let one: serde_json::Value = serde_json::from_str(&request_body(&ctx, &[1], 4, false)).expect("json");
        assert_eq!(one["channel"], "b");
        assert_eq!(one["data"]["s"], 4);
        assert!(one["data"]["t"].as_u64().is_some_and(|t| t > 1_600_000_000_000_000_000));
        let many: serde_json::Value = serde_json::from_str(&request_body(&ctx, &[0, 1], 0, true)).expect("json");
        assert_eq!(many["channels"], serde_json::json!(["a", "b"]));
    }
}
