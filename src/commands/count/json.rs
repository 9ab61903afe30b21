//! pycount as JSON: one document per report.

use serde_json::{Value, json};

use crate::commands::count::{CallReport, CountView};

pub fn report(report: &CallReport, view: CountView) -> Value {
    let functions: Vec<Value> = report
        .ordered(view)
        .into_iter()
        .map(|f| {
            let func = &f.function;
            let mut v = json!({
                "file": func.file,
                "line": func.line,
                "name": func.name,
                "name_truncated": func.name_truncated,
                "file_truncated": func.file_truncated,
                "count": f.count,
            });
            if let Some(pid) = f.pid {
                v["pid"] = json!(pid);
            }
            if report.latency {
                let p = f.percentiles(&[50.0, 90.0, 99.0]);
                v["timed"] = json!(f.timed);
                v["total_ns"] = json!(f.total_ns);
                v["own_ns"] = json!(f.own_ns);
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
        "lost": crate::output::json::losses(&report.losses),
        "notes": report.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::calls::FunctionStats;
    use crate::trace::histogram::{Histogram, bucket_of};

    #[test]
    fn json_carries_latency_fields() {
        let mut histogram = Histogram::default();
        histogram.add(bucket_of(10_000_000), 2);
        let s = FunctionStats {
            count: 2,
            timed: 2,
            total_ns: 20_000_000,
            histogram,
            ..Default::default()
        };
        let r = CallReport {
            functions: vec![s],
            latency: true,
            ..Default::default()
        };
        let v = report(&r, CountView::default());
        assert_eq!(v["functions"][0]["count"], 2);
        assert_eq!(v["functions"][0]["avg_ns"], 10_000_000);
        let p50 = v["functions"][0]["p50_ns"].as_u64().unwrap();
        assert!((9_700_000..=10_400_000).contains(&p50), "{p50}");
        assert_eq!(v["total_calls"], 2);
    }
}
