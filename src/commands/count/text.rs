//! pycount as a table: calls (and with --latency total/avg/percentiles/max) per function.

use crate::commands::count::{CallReport, CountView};
use crate::output::duration;

pub fn table(report: &CallReport, view: CountView) -> String {
    let mut out = String::new();
    let fs = report.ordered(view);
    // Only when following forked processes: a column of the one PID would say nothing.
    let pid = |p: Option<u32>| match (report.per_process, p) {
        (false, _) => String::new(),
        (true, Some(p)) => format!("{p:>8} "),
        (true, None) => format!("{:>8} ", "PID"),
    };
    if report.latency {
        out.push_str(&format!(
            "{}{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  FUNCTION\n",
            pid(None),
            "CALLS",
            "OWN",
            "TOTAL",
            "AVG",
            "P50",
            "P90",
            "P99",
            "MAX"
        ));
        for f in fs {
            let p = f.percentiles(&[50.0, 90.0, 99.0]);
            out.push_str(&format!(
                "{}{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}\n",
                pid(f.pid),
                f.count,
                duration(f.own_ns),
                duration(f.total_ns),
                duration(f.avg_ns()),
                duration(p[0]),
                duration(p[1]),
                duration(p[2]),
                duration(f.max_ns),
                f.function.label()
            ));
        }
    } else {
        out.push_str(&format!("{}{:>10}  FUNCTION\n", pid(None), "CALLS"));
        for f in fs {
            out.push_str(&format!(
                "{}{:>10}  {}\n",
                pid(f.pid),
                f.count,
                f.function.label()
            ));
        }
    }
    for n in &report.notes {
        out.push_str(&format!("WARNING: {n}\n"));
    }
    out.push_str(&crate::output::text::warnings(&report.losses));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::calls::FunctionStats;
    use crate::trace::function::Function;

    #[test]
    fn table_shows_counts_and_labels() {
        let f = |name: &str, line, count, cut| FunctionStats {
            function: Function {
                file: "/w/app.py".into(),
                line,
                name: name.into(),
                name_truncated: cut,
                ..Default::default()
            },
            count,
            ..Default::default()
        };
        let r = CallReport {
            functions: vec![f("fib", 3, 21891, false), f("x", 7, 3, true)],
            ..Default::default()
        };
        assert_eq!(
            table(&r, CountView::default()),
            "     CALLS  FUNCTION\n     21891  /w/app.py:3 fib\n         3  /w/app.py:7 x...[truncated]\n"
        );
    }
}
