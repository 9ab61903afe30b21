//! pyprobe lines as JSON: one document per report.

use serde_json::{Value, json};

use crate::commands::lines::LineReport;

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
