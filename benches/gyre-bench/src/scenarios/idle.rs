//! `idle`: ramp to N connected + subscribed clients, hold them (long enough for pings), and
//! read the server's RSS and CPU: bytes per connection, µs/s per connection, connect rate.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::cli::IdleArgs;
use crate::engine::Run;
use crate::procstat;
use crate::report::{IdleReport, Report};

use super::{report, specs, Outcome};

pub async fn run(args: IdleArgs) -> Result<Report, String> {
    let per_conn = args.channels_per_conn.min(2);
    let total = args.warmup_conns + args.conns;
    // Channel 2i and 2i+1 belong to connection i.
    let channels: Vec<String> =
        (0..total * 2).map(|c| if c % 2 == 0 { format!("idle{}", c / 2) } else { format!("idle{}b", c / 2) }).collect();
    let channels_of = |i: usize| (0..per_conn).map(|k| (2 * i + k) as u32).collect();
    let mut run = Run::new(&args.common, channels, total)?;
    let target = run.target.clone();

    run.phase.set("warm-up connections");
    run.ramp(&target, specs(0, args.warmup_conns, "warm", channels_of)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_before, slab_before) = (run.server.rss_kib(), procstat::slab_kib());

    run.phase.set(format!("ramp to {}", args.conns));
    let ramp = run.ramp(&target, specs(args.warmup_conns, args.conns, "idle", channels_of)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_ramp = run.server.rss_kib();

    run.phase.set(format!("hold {:.0}s", args.hold_secs));
    let (pings_before, dropped_before) = (run.stats.pings.load(Relaxed), run.stats.disconnected.load(Relaxed));
    let cpu_before = run.server.cpu();
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let (cpu_us, seconds) = run.server.cpu().since(&cpu_before);
    let (rss_after_hold, slab_after) = (run.server.rss_kib(), procstat::slab_kib());

    let held = ramp.connections as f64;
    let per_conn_bytes =
        |before: Option<u64>, after: Option<u64>| Some((after? as f64 - before? as f64) * 1024.0 / held.max(1.0));
    let idle = IdleReport {
        connections: ramp.connections,
        channels_per_conn: per_conn,
        hold_secs: args.hold_secs,
        rss_before_kib: rss_before,
        rss_after_ramp_kib: rss_after_ramp,
        rss_after_hold_kib: rss_after_hold,
        rss_per_conn_bytes: per_conn_bytes(rss_before, rss_after_hold),
        slab_per_conn_bytes: per_conn_bytes(slab_before, slab_after),
        idle_cpu_us_per_s_per_conn: cpu_us.map(|us| us as f64 / seconds / held.max(1.0)),
        pings_answered: run.stats.pings.load(Relaxed) - pings_before,
        dropped: run.stats.disconnected.load(Relaxed) - dropped_before,
    };
    let params = serde_json::json!({
        "conns": args.conns, "channels_per_conn": per_conn, "hold_secs": args.hold_secs,
        "warmup_conns": args.warmup_conns, "connect_rate": args.common.connect_rate,
        "connect_concurrency": args.common.connect_concurrency, "source_ips": args.common.source_ips,
    });
    let notes = vec![
        "RSS/conn = (server VmRSS after the hold − before the ramp) / connections; slab/conn counts both socket ends (loader and server share the kernel)".into(),
    ];
    Ok(report(&run, "idle", Outcome { params, ramps: vec![ramp], idle: Some(idle), notes, ..Outcome::default() }))
}
