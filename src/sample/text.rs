//! Sampled profiles as a table of functions (record's text format, and each screen of top): the
//! share of samples where a function was running itself (own) or anywhere on the stack (total),
//! and the time those samples stand for.
use std::io::{self, Write};

use crate::escape::escape;
use crate::output::{Never, Output, Window};
use crate::sample::{FunctionKey, FunctionSamples, Profile};

/// The order of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SortBy {
    /// Samples in the function itself
    #[default]
    Own,
    /// Samples with the function anywhere on the stack
    Total,
    /// Function name
    Name,
}

impl SortBy {
    pub fn label(self) -> &'static str {
        match self {
            SortBy::Own => "own",
            SortBy::Total => "total",
            SortBy::Name => "name",
        }
    }
}

/// One row: a function, its samples in the window (shares) and overall (times).
pub struct Row {
    pub function: FunctionKey,
    pub window: FunctionSamples,
    pub overall: FunctionSamples,
}

/// The rows of a table, sorted, at most `limit`.
pub fn rows(window: &Profile, overall: &Profile, sort: SortBy, limit: Option<usize>) -> Vec<Row> {
    let w = window.functions();
    let mut rows: Vec<Row> = overall
        .functions()
        .into_iter()
        .map(|(function, overall)| Row {
            window: w.get(&function).cloned().unwrap_or_default(),
            function,
            overall,
        })
        .collect();
    rows.sort_by(|a, b| {
        let by = match sort {
            SortBy::Own => (b.window.own, b.overall.own)
                .cmp(&(a.window.own, a.overall.own))
                .then((b.overall.total).cmp(&a.overall.total)),
            SortBy::Total => (b.window.total, b.overall.total)
                .cmp(&(a.window.total, a.overall.total))
                .then((b.overall.own).cmp(&a.overall.own)),
            SortBy::Name => std::cmp::Ordering::Equal,
        };
        by.then_with(|| a.function.cmp(&b.function))
    });
    if let Some(n) = limit {
        rows.truncate(n);
    }
    rows
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}

fn secs(samples: u64, rate: u32) -> String {
    format!("{:.2}s", samples as f64 / f64::from(rate.max(1)))
}

/// The table's lines: a header, then a row per function.
pub fn table_lines(
    window: &Profile,
    overall: &Profile,
    sort: SortBy,
    limit: Option<usize>,
) -> Vec<String> {
    let n = window.total_samples();
    // Which line: a function's def line (one row per function), or with --lines the line
    // running (as the flame graph names frames).
    let what = if overall.by_line {
        "FUNCTION (FILE:LINE RUNNING)"
    } else {
        "FUNCTION (FILE:DEF LINE)"
    };
    let mut lines = vec![format!(
        "{:>7} {:>7} {:>9} {:>10}  {what}",
        "%OWN", "%TOTAL", "OWN", "TOTAL"
    )];
    for r in rows(window, overall, sort, limit) {
        // record --async's task rows (`task NAME`) have no file.
        let place = match (r.function.file.is_empty(), r.function.def_line) {
            (true, 0) => String::new(),
            _ => format!(" ({}:{})", escape(&r.function.file), r.function.def_line),
        };
        lines.push(format!(
            "{:>7} {:>7} {:>9} {:>10}  {}{place}",
            pct(r.window.own, n),
            pct(r.window.total, n),
            secs(r.overall.own, overall.rate_hz),
            secs(r.overall.total, overall.rate_hz),
            escape(&r.function.name),
        ));
    }
    lines
}

/// record's text format: the whole profile as one table.
pub struct Table {
    w: Box<dyn Write>,
    limit: Option<usize>,
}

impl Table {
    pub fn new(w: Box<dyn Write>, limit: Option<usize>) -> Table {
        Table { w, limit }
    }
}

impl Output<Never, Profile> for Table {
    fn report(&mut self, p: &Profile, _: &Window) -> io::Result<()> {
        writeln!(
            self.w,
            "{} samples at {} Hz over {:.1}s{}",
            p.total_samples(),
            p.rate_hz,
            p.elapsed.as_secs_f64(),
            if p.idle {
                " (idle threads included)"
            } else {
                ""
            }
        )?;
        for l in table_lines(p, p, SortBy::Own, self.limit) {
            writeln!(self.w, "{l}")?;
        }
        write!(self.w, "{}", crate::output::text::warnings(&p.losses))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::tests::profile;

    #[test]
    fn functions_by_own_share() {
        let p = profile();
        let lines = table_lines(&p, &p, SortBy::Own, Some(2));
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("burn (/w/app.py:4)"), "{lines:?}");
        assert!(
            lines[1].starts_with("  63.8%   63.8%     0.30s"),
            "{lines:?}"
        );
        assert!(lines[0].ends_with("FUNCTION (FILE:DEF LINE)"), "{lines:?}");
        let by_total = table_lines(&p, &p, SortBy::Total, None);
        assert!(by_total[1].contains("main"), "{by_total:?}");
    }
}
