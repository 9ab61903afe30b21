//! pygc as text: a histogram per generation, a summary table, and streamed pauses as rows.
use std::io::{self, Write};

use crate::commands::gc::{GcPause, GcReport};
use crate::output::{Output, Window, duration, time_of_day};
use crate::trace::histogram::{Histogram, bucket_bounds, bucket_of, render_log2};

pub struct Table {
    w: Box<dyn Write>,
    /// Pauses are streamed (--min-pause): their rows need a header.
    streams: bool,
}

impl Table {
    pub fn new(w: Box<dyn Write>, streams: bool) -> Table {
        Table { w, streams }
    }
}

impl Output<GcPause, GcReport> for Table {
    fn start(&mut self) -> io::Result<()> {
        if self.streams {
            writeln!(self.w, "{PAUSE_HEADER}")?;
            self.w.flush()?;
        }
        Ok(())
    }

    fn event(&mut self, p: &GcPause) -> io::Result<()> {
        writeln!(self.w, "{}", pause_line(p))
    }

    fn report(&mut self, report: &GcReport, window: &Window) -> io::Result<()> {
        writeln!(self.w)?;
        if let Some(c) = &window.clock {
            writeln!(self.w, "{c}")?;
        }
        self.w.write_all(table(report).as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

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
    out.push_str(&crate::output::text::warnings(&report.losses));
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::gc::testing::gc_report as report;

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
    fn a_pause_is_a_row() {
        let p = crate::commands::gc::testing::gc_pause();
        assert_eq!(
            pause_line(&p),
            "01:01:01.250000  10       11       2    12.00ms     42"
        );
    }
}
