//! pygc's output: per-generation pause histograms and summary table, streamed pauses, and JSON.
use serde_json::{Value, json};

use super::duration;
use crate::gc::{GcPause, GcReport, GenerationStats};
use crate::histogram::{Histogram, bucket_bounds, bucket_of, render_log2};

/// Power-of-two rows in microseconds. The kernel buckets nanoseconds (1/16 of a power of two
/// wide), so a pause within 1/16 of a row's edge may be shown in the row below it.
pub fn usec_rows(h: &Histogram) -> Vec<(u64, u64, u64)> {
    let mut us = Histogram::default();
    for (&b, &c) in &h.buckets {
        us.add(bucket_of(bucket_bounds(b).0 / 1_000), c);
    }
    us.log2_rows()
}

pub fn table(report: &GcReport) -> String {
    let mut out = String::new();
    for g in report.generations.iter().filter(|g| g.count > 0) {
        out.push_str(&format!("generation {}:\n", g.generation));
        out.push_str(&render_log2(&usec_rows(&g.histogram), "usecs"));
        out.push('\n');
    }
    out.push_str(&format!(
        "{:>3} {:>11} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}\n",
        "GEN", "COLLECTIONS", "TOTAL", "P50", "P90", "P99", "MAX", "COLLECTED"
    ));
    for g in &report.generations {
        let [p50, p90, p99] = g.percentiles();
        out.push_str(&format!(
            "{:>3} {:>11} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}\n",
            g.generation,
            g.count,
            duration(g.total_ns),
            duration(p50),
            duration(p90),
            duration(p99),
            duration(g.max_ns),
            g.collected
        ));
    }
    out.push_str(&format!(
        "GC pauses: {} collections, {} in {:.2}s of wall time ({:.2}%)\n",
        report.collections(),
        duration(report.total_pause_ns()),
        report.elapsed.as_secs_f64(),
        report.gc_share() * 100.0
    ));
    if report.other_generation > 0 {
        out.push_str(&format!(
            "WARNING: {} collections of a generation other than 0-2 (counted here only)\n",
            report.other_generation
        ));
    }
    for line in report.losses.lines() {
        out.push_str(&format!("WARNING: {line}\n"));
    }
    out
}

fn generation_json(g: &GenerationStats) -> Value {
    let [p50, p90, p99] = g.percentiles();
    let histogram: Vec<Value> = usec_rows(&g.histogram)
        .into_iter()
        .map(|(lo, hi, count)| json!({"low_us": lo, "high_us": hi, "count": count}))
        .collect();
    json!({
        "generation": g.generation,
        "count": g.count,
        "total_ns": g.total_ns,
        "p50_ns": p50,
        "p90_ns": p90,
        "p99_ns": p99,
        "max_ns": g.max_ns,
        "collected": g.collected,
        "histogram_us": histogram,
    })
}

pub fn json(report: &GcReport) -> Value {
    json!({
        "type": "report",
        "generations": report.generations.iter().map(generation_json).collect::<Vec<_>>(),
        "collections": report.collections(),
        "total_pause_ns": report.total_pause_ns(),
        "elapsed_ns": report.elapsed.as_nanos() as u64,
        "gc_share": report.gc_share(),
        "other_generation": report.other_generation,
        "lost": report.losses.to_json(),
    })
}

pub const PAUSE_HEADER: &str = "TIME(UTC)        PID      TID      GEN  PAUSE       COLLECTED";

/// One streamed pause as a table row under PAUSE_HEADER.
pub fn pause_line(p: &GcPause) -> String {
    format!(
        "{:<16} {:<8} {:<8} {:<4} {:<11} {}",
        time_of_day(p.unix_ns),
        p.pid,
        p.tid,
        p.generation,
        duration(p.duration_ns),
        p.collected
    )
}

pub fn pause_json(p: &GcPause) -> Value {
    json!({
        "type": "pause",
        "time": time_of_day(p.unix_ns),
        "unix_ns": p.unix_ns,
        "pid": p.pid,
        "tid": p.tid,
        "generation": p.generation,
        "duration_ns": p.duration_ns,
        "collected": p.collected,
    })
}

/// `HH:MM:SS.mmmmmm` (UTC), precise enough to line pauses up with a service's own logs.
pub fn time_of_day(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        unix_ns % 1_000_000_000 / 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::Losses;
    use std::time::Duration;

    fn report() -> GcReport {
        let mut generations: Vec<GenerationStats> = (0..3)
            .map(|g| GenerationStats {
                generation: g,
                ..Default::default()
            })
            .collect();
        let g2 = &mut generations[2];
        for p in [30_000_000u64, 35_000_000, 1_500_000] {
            g2.histogram.add(bucket_of(p), 1);
            g2.count += 1;
            g2.total_ns += p;
            g2.max_ns = g2.max_ns.max(p);
        }
        g2.collected = 300_000;
        GcReport {
            generations,
            elapsed: Duration::from_secs(2),
            other_generation: 0,
            losses: Losses::default(),
        }
    }

    #[test]
    fn histogram_rows_are_in_microseconds() {
        let r = report();
        let rows = usec_rows(&r.generations[2].histogram);
        assert_eq!(rows.first(), Some(&(1024, 2047, 1)));
        assert_eq!(rows.last(), Some(&(32768, 65535, 1)));
        assert_eq!(rows.iter().map(|r| r.2).sum::<u64>(), 3);
        assert_eq!(
            rows.iter().find(|r| r.0 == 16384).map(|r| r.2),
            Some(1),
            "30ms is in 16384 -> 32767: {rows:?}"
        );
    }

    #[test]
    fn table_has_histograms_summary_and_share() {
        let text = table(&report());
        assert!(text.contains("generation 2:\n"), "{text}");
        assert!(
            !text.contains("generation 0:"),
            "empty generations have no histogram"
        );
        assert!(text.contains("16384 -> 32767"), "{text}");
        assert!(
            text.contains("GC pauses: 3 collections, 66.50ms in 2.00s of wall time (3.33%)"),
            "{text}"
        );
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with("2 "))
            .unwrap();
        assert!(row.contains("35.00ms") && row.ends_with("300000"), "{row}");
    }

    #[test]
    fn json_report_and_pause() {
        let v = json(&report());
        assert_eq!(v["type"], "report");
        assert_eq!(v["generations"][2]["count"], 3);
        assert_eq!(v["generations"][2]["max_ns"], 35_000_000);
        assert_eq!(v["generations"][0]["count"], 0);
        assert_eq!(v["total_pause_ns"], 66_500_000);
        let p = GcPause {
            unix_ns: 3_600_000_000_000 + 61_250_000_000,
            pid: 10,
            tid: 11,
            generation: 2,
            duration_ns: 12_000_000,
            collected: 42,
        };
        assert_eq!(pause_json(&p)["time"], "01:01:01.250000");
        assert_eq!(
            pause_line(&p),
            "01:01:01.250000  10       11       2    12.00ms     42"
        );
    }
}
