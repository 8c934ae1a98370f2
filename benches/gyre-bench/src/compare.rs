//! `compare A B`: matches the reports of two servers by scenario (and tag) and writes one
//! side-by-side table with ratios A/B, a combined JSON, and gnuplot data files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::cli::CompareArgs;
use crate::report::{opt, Report, StepReport};

pub fn run(args: &CompareArgs) -> Result<String, String> {
    let a = load_dir(&args.a)?;
    let b = load_dir(&args.b)?;
    let (label_a, label_b) = (label(&a, "A"), label(&b, "B"));
    let mut md = format!(
        "## {label_a} vs {label_b}\n\nRatio = {label_a} / {label_b} (below 1: {label_a} uses less / is faster).\n\n"
    );
    let mut combined = serde_json::Map::new();
    for (key, report_a) in &a {
        let Some(report_b) = b.get(key) else {
            let _ = writeln!(md, "_{key}: only {label_a} has a report_\n");
            continue;
        };
        md += &compare_pair(key, report_a, report_b);
        combined.insert(key.clone(), serde_json::json!({ label_a.clone(): report_a, label_b.clone(): report_b }));
    }
    if let Some(dir) = &args.out {
        write_outputs(dir, &md, &combined, &[(&label_a, &a), (&label_b, &b)])?;
    }
    Ok(md)
}

fn label(reports: &BTreeMap<String, Report>, fallback: &str) -> String {
    reports.values().next().map_or(fallback.to_owned(), |r| r.label.clone())
}

/// Every `*.json` report in `dir`, by scenario key.
fn load_dir(dir: &Path) -> Result<BTreeMap<String, Report>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    let mut reports = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
            let report: Report =
                serde_json::from_str(&text).map_err(|e| format!("{} is no report: {e}", path.display()))?;
            reports.insert(report.key(), report);
        }
    }
    Ok(reports)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.abs() > f64::EPSILON => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

fn compare_pair(key: &str, a: &Report, b: &Report) -> String {
    let mut md = format!("### {key}\n\n");
    let (la, lb) = (&a.label, &b.label);
    let mut rows: Vec<(String, Option<f64>, Option<f64>, usize)> = Vec::new();
    if let (Some(ia), Some(ib)) = (&a.idle, &b.idle) {
        rows.push(("connections held".into(), Some(ia.connections as f64), Some(ib.connections as f64), 0));
        rows.push(("RSS per connection (bytes)".into(), ia.rss_per_conn_bytes, ib.rss_per_conn_bytes, 0));
        rows.push((
            "kernel slab per connection (bytes, both ends)".into(),
            ia.slab_per_conn_bytes,
            ib.slab_per_conn_bytes,
            0,
        ));
        rows.push((
            "idle CPU (µs/s per connection)".into(),
            ia.idle_cpu_us_per_s_per_conn,
            ib.idle_cpu_us_per_s_per_conn,
            3,
        ));
        let rss_mib = |kib: Option<u64>| kib.map(|k| k as f64 / 1024.0);
        rows.push((
            "server RSS after hold (MiB)".into(),
            rss_mib(ia.rss_after_hold_kib),
            rss_mib(ib.rss_after_hold_kib),
            1,
        ));
    }
    for (i, (ra, rb)) in a.ramps.iter().zip(&b.ramps).enumerate() {
        let n = ra.connections;
        rows.push((
            format!("ramp {} ({n} conns): connect+subscribe /s", i + 1),
            Some(ra.rate_per_s),
            Some(rb.rate_per_s),
            0,
        ));
        rows.push((
            format!("ramp {} ({n} conns): connect p99 (ms)", i + 1),
            Some(ra.latency.p99_ms),
            Some(rb.latency.p99_ms),
            2,
        ));
    }
    if !rows.is_empty() {
        let _ = writeln!(md, "| metric | {la} | {lb} | ratio |\n|---|---|---|---|");
        for (name, va, vb, decimals) in rows {
            let _ = writeln!(md, "| {name} | {} | {} | {} |", opt(va, decimals), opt(vb, decimals), ratio(va, vb));
        }
        md += "\n";
    }
    if a.steps.iter().any(|s| s.deliveries > 0) {
        md += &steps_side_by_side(la, lb, &a.steps, &b.steps);
    } else if !a.steps.is_empty() {
        md += &publish_steps_side_by_side(la, lb, &a.steps, &b.steps);
    }
    let _ = writeln!(
        md,
        "Lost: {la} {} of {}, {lb} {} of {}. Dropped connections: {la} {}, {lb} {}.\n",
        a.loss.lost, a.loss.expected, b.loss.lost, b.loss.expected, a.totals.dropped, b.totals.dropped
    );
    md
}

fn steps_side_by_side(la: &str, lb: &str, a: &[StepReport], b: &[StepReport]) -> String {
    let mut md = format!(
        "| step | deliveries/s {la} | {lb} | p50 ms {la} | {lb} | p99 ms {la} | {lb} | max ms {la} | {lb} | CPU µs/delivery {la} | {lb} | **CPU ratio** | p99 ratio |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for (sa, sb) in a.iter().zip(b) {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {} | **{}** | {} |",
            sa.name,
            sa.deliveries_per_s,
            sb.deliveries_per_s,
            sa.latency.p50_ms,
            sb.latency.p50_ms,
            sa.latency.p99_ms,
            sb.latency.p99_ms,
            sa.latency.max_ms,
            sb.latency.max_ms,
            opt(sa.server_cpu_us_per_delivery, 2),
            opt(sb.server_cpu_us_per_delivery, 2),
            ratio(sa.server_cpu_us_per_delivery, sb.server_cpu_us_per_delivery),
            ratio(Some(sa.latency.p99_ms), Some(sb.latency.p99_ms)),
        );
    }
    md + "\n"
}

/// Steps without subscribers (history): API throughput and latency.
fn publish_steps_side_by_side(la: &str, lb: &str, a: &[StepReport], b: &[StepReport]) -> String {
    let mut md = format!(
        "| step | publishes/s {la} | {lb} | API p50 ms {la} | {lb} | API p99 ms {la} | {lb} | CPU µs/publish {la} | {lb} | **CPU ratio** | errors {la} | {lb} |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for (sa, sb) in a.iter().zip(b) {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | **{}** | {} | {} |",
            sa.name,
            sa.publishes_per_s,
            sb.publishes_per_s,
            sa.api_latency.p50_ms,
            sb.api_latency.p50_ms,
            sa.api_latency.p99_ms,
            sb.api_latency.p99_ms,
            opt(sa.server_cpu_us_per_publish, 1),
            opt(sb.server_cpu_us_per_publish, 1),
            ratio(sa.server_cpu_us_per_publish, sb.server_cpu_us_per_publish),
            sa.publish_errors,
            sb.publish_errors,
        );
    }
    md + "\n"
}

/// combined.md, combined.json, and per-server gnuplot data: fanout-LABEL.dat (one block per N,
/// headed `N=…`: publish rate, deliveries/s, p50, p99, CPU µs/delivery) and idle-LABEL.dat
/// (connections, server RSS MiB).
fn write_outputs(
    dir: &Path,
    md: &str,
    combined: &serde_json::Map<String, serde_json::Value>,
    servers: &[(&String, &BTreeMap<String, Report>)],
) -> Result<(), String> {
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("write {}: {e}", dir.join(name).display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    write("combined.md", md)?;
    write("combined.json", &serde_json::to_string_pretty(combined).map_err(|e| e.to_string())?)?;
    for (label, reports) in servers {
        write(&format!("fanout-{label}.dat"), &fanout_data(reports))?;
        write(&format!("idle-{label}.dat"), &idle_data(reports))?;
    }
    Ok(())
}

fn fanout_data(reports: &BTreeMap<String, Report>) -> String {
    let mut by_n: BTreeMap<u64, Vec<&StepReport>> = BTreeMap::new();
    for step in reports.values().filter(|r| r.scenario == "fanout").flat_map(|r| &r.steps) {
        by_n.entry(step.subscribers).or_default().push(step);
    }
    let mut out = String::new();
    for (n, steps) in by_n {
        // The header line names the block (gnuplot: `title columnheader(1)`).
        let _ = writeln!(out, "N={n} deliveries_per_s p50_ms p99_ms cpu_us_per_delivery");
        for s in steps {
            let _ = writeln!(
                out,
                "{} {:.0} {:.3} {:.3} {}",
                s.target_rate,
                s.deliveries_per_s,
                s.latency.p50_ms,
                s.latency.p99_ms,
                s.server_cpu_us_per_delivery.unwrap_or(f64::NAN)
            );
        }
        out += "\n\n";
    }
    out
}

fn idle_data(reports: &BTreeMap<String, Report>) -> String {
    let mut points: Vec<(u64, f64)> = Vec::new();
    for idle in reports.values().filter_map(|r| r.idle.as_ref()) {
        if let Some(before) = idle.rss_before_kib {
            points.push((0, before as f64 / 1024.0));
        }
        if let Some(after) = idle.rss_after_hold_kib {
            points.push((idle.connections, after as f64 / 1024.0));
        }
    }
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    let mut out = "# connections rss_mib\n".to_owned();
    for (n, mib) in points {
        let _ = writeln!(out, "{n} {mib:.1}");
    }
    out
}
