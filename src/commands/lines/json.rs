//! pyprobe lines as JSON: one document per report.
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::commands::lines::LineReport;
use crate::output::{Never, Output, Window};

pub struct Json {
    w: Box<dyn Write>,
    top: Option<usize>,
}

impl Json {
    pub fn new(w: Box<dyn Write>, top: Option<usize>) -> Json {
        Json { w, top }
    }
}

pub fn report(report: &LineReport, top: Option<usize>) -> Value {
    let lines: Vec<Value> = report
        .ordered(top)
        .into_iter()
        .map(|l| {
            json!({
                "file": l.file,
                "line": l.line,
                "count": l.count,
                "file_truncated": l.file_truncated,
            })
        })
        .collect();
    json!({
        "lines": lines,
        "total": report.total(),
        "lost": crate::output::json::losses(&report.losses),
    })
}

impl Output<Never, LineReport> for Json {
    fn report(&mut self, r: &LineReport, _: &Window) -> io::Result<()> {
        writeln!(self.w, "{}", report(r, self.top))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
