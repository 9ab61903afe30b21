//! pyprobe lines' report: source lines hottest first, as a table or JSON.
use serde_json::{Value, json};

use crate::lines::{LineReport, LineStats};

/// Lines by count, biggest first, then by file and line for stability; the first `top`.
pub fn ordered(report: &LineReport, top: Option<usize>) -> Vec<&LineStats> {
    let mut ls: Vec<&LineStats> = report.lines.iter().collect();
    ls.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.file.cmp(&b.file))
            .then_with(|| a.line.cmp(&b.line))
    });
    if let Some(n) = top {
        ls.truncate(n);
    }
    ls
}

/// `file:line`, marking a path whose beginning the kernel had to cut.
pub fn line_label(l: &LineStats) -> String {
    format!(
        "{}{}:{}",
        if l.file_truncated { "..." } else { "" },
        l.file,
        l.line
    )
}

pub fn table(report: &LineReport, top: Option<usize>) -> String {
    let mut out = format!("{:>12}  LINE\n", "COUNT");
    for l in ordered(report, top) {
        out.push_str(&format!("{:>12}  {}\n", l.count, line_label(l)));
    }
    for line in report.losses.lines() {
        out.push_str(&format!("WARNING: {line}\n"));
    }
    out
}

pub fn json(report: &LineReport, top: Option<usize>) -> Value {
    let lines: Vec<Value> = ordered(report, top)
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
        "lost": report.losses.to_json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(file: &str, line: u32, count: u64) -> LineStats {
        LineStats {
            file: file.into(),
            file_truncated: false,
            line,
            count,
        }
    }

    #[test]
    fn hottest_first_and_cut_to_top() {
        let mut cut = l("pkg/deep/mod.py", 9, 7);
        cut.file_truncated = true;
        let r = LineReport {
            lines: vec![l("/w/a.py", 3, 10), l("/w/a.py", 4, 1000), cut],
            ..Default::default()
        };
        assert_eq!(
            table(&r, None),
            "       COUNT  LINE\n        1000  /w/a.py:4\n          10  /w/a.py:3\n           7  ...pkg/deep/mod.py:9\n"
        );
        let v = json(&r, Some(1));
        assert_eq!(v["lines"].as_array().unwrap().len(), 1);
        assert_eq!(v["lines"][0]["line"], 4);
        assert_eq!(v["total"], 1017);
    }
}
