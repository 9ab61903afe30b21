//! pycount's report: a table sorted by count (or latency) and its JSON form.
use serde_json::{Value, json};

use super::duration;
use crate::count::{CallReport, FunctionStats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SortKey {
    #[default]
    Count,
    Total,
    Avg,
}

/// The functions in report order: by the sort key, biggest first, then by name for stability.
pub fn ordered(report: &CallReport, sort: SortKey, top: Option<usize>) -> Vec<&FunctionStats> {
    let mut fs: Vec<&FunctionStats> = report.functions.iter().collect();
    let key = |f: &FunctionStats| match sort {
        SortKey::Count => f.count,
        SortKey::Total => f.total_ns,
        SortKey::Avg => f.avg_ns(),
    };
    fs.sort_by(|a, b| {
        key(b)
            .cmp(&key(a))
            .then_with(|| a.file.cmp(&b.file))
            .then_with(|| a.line.cmp(&b.line))
            .then_with(|| a.name.cmp(&b.name))
    });
    if let Some(n) = top {
        fs.truncate(n);
    }
    fs
}

/// `file:line name`, marking what the kernel had to cut.
pub fn function_label(f: &FunctionStats) -> String {
    format!(
        "{}{}:{} {}{}",
        if f.file_truncated { "..." } else { "" },
        f.file,
        f.line,
        f.name,
        if f.name_truncated {
            "...[truncated]"
        } else {
            ""
        }
    )
}

pub fn table(report: &CallReport, sort: SortKey, top: Option<usize>) -> String {
    let fs = ordered(report, sort, top);
    let mut out = String::new();
    if report.latency {
        out.push_str(&format!(
            "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  FUNCTION\n",
            "CALLS", "TOTAL", "AVG", "P50", "P90", "P99", "MAX"
        ));
        for f in fs {
            let p = f.percentiles(&[50.0, 90.0, 99.0]);
            out.push_str(&format!(
                "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}\n",
                f.count,
                duration(f.total_ns),
                duration(f.avg_ns()),
                duration(p[0]),
                duration(p[1]),
                duration(p[2]),
                duration(f.max_ns),
                function_label(f)
            ));
        }
    } else {
        out.push_str(&format!("{:>10}  FUNCTION\n", "CALLS"));
        for f in fs {
            out.push_str(&format!("{:>10}  {}\n", f.count, function_label(f)));
        }
    }
    for line in report.losses.lines() {
        out.push_str(&format!("WARNING: {line}\n"));
    }
    out
}

pub fn json(report: &CallReport, sort: SortKey, top: Option<usize>) -> Value {
    let functions: Vec<Value> = ordered(report, sort, top)
        .into_iter()
        .map(|f| {
            let mut v = json!({
                "file": f.file,
                "line": f.line,
                "name": f.name,
                "name_truncated": f.name_truncated,
                "file_truncated": f.file_truncated,
                "count": f.count,
            });
            if report.latency {
                let p = f.percentiles(&[50.0, 90.0, 99.0]);
                v["timed"] = json!(f.timed);
                v["total_ns"] = json!(f.total_ns);
                v["avg_ns"] = json!(f.avg_ns());
                v["p50_ns"] = json!(p[0]);
                v["p90_ns"] = json!(p[1]);
                v["p99_ns"] = json!(p[2]);
                v["max_ns"] = json!(f.max_ns);
            }
            v
        })
        .collect();
    json!({
        "functions": functions,
        "total_calls": report.total_calls(),
        "lost": report.losses.to_json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{Histogram, bucket_of};

    fn f(name: &str, line: i32, count: u64, total: u64) -> FunctionStats {
        FunctionStats {
            id: line as u32,
            file: "/w/app.py".into(),
            line,
            name: name.into(),
            count,
            timed: count,
            total_ns: total,
            ..Default::default()
        }
    }

    #[test]
    fn sorts_and_cuts() {
        let r = CallReport {
            functions: vec![f("a", 1, 5, 100), f("b", 2, 50, 10), f("c", 3, 5, 1000)],
            ..Default::default()
        };
        let names: Vec<_> = ordered(&r, SortKey::Count, None)
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(names, ["b", "a", "c"]);
        let names: Vec<_> = ordered(&r, SortKey::Total, Some(2))
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(names, ["c", "a"]);
        let names: Vec<_> = ordered(&r, SortKey::Avg, None)
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
    }

    #[test]
    fn table_shows_counts_and_labels() {
        let mut t = f("x", 7, 3, 0);
        t.name_truncated = true;
        let r = CallReport {
            functions: vec![f("fib", 3, 21891, 0), t],
            ..Default::default()
        };
        let text = table(&r, SortKey::Count, None);
        assert_eq!(
            text,
            "     CALLS  FUNCTION\n     21891  /w/app.py:3 fib\n         3  /w/app.py:7 x...[truncated]\n"
        );
    }

    #[test]
    fn json_carries_latency_fields() {
        let mut s = f("slow", 1, 2, 20_000_000);
        s.histogram = Histogram::default();
        s.histogram.add(bucket_of(10_000_000), 2);
        let r = CallReport {
            functions: vec![s],
            latency: true,
            ..Default::default()
        };
        let v = json(&r, SortKey::Count, None);
        assert_eq!(v["functions"][0]["count"], 2);
        assert_eq!(v["functions"][0]["avg_ns"], 10_000_000);
        let p50 = v["functions"][0]["p50_ns"].as_u64().unwrap();
        assert!((9_700_000..=10_400_000).contains(&p50), "{p50}");
        assert_eq!(v["total_calls"], 2);
    }
}
