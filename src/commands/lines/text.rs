//! pyprobe lines as a table: source lines, hottest first.

use crate::commands::lines::LineReport;

pub fn table(report: &LineReport, top: Option<usize>) -> String {
    let mut out = format!("{:>12}  LINE\n", "COUNT");
    for l in report.ordered(top) {
        out.push_str(&format!("{:>12}  {}\n", l.count, l.label()));
    }
    out.push_str(&crate::output::text::warnings(&report.losses));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::lines::LineStats;

    #[test]
    fn hottest_first_and_cut_to_top() {
        let l = |file: &str, line, count, file_truncated| LineStats {
            file: file.into(),
            file_truncated,
            line,
            count,
        };
        let r = LineReport {
            lines: vec![
                l("/w/a.py", 3, 10, false),
                l("/w/a.py", 4, 1000, false),
                l("pkg/deep/mod.py", 9, 7, true),
            ],
            ..Default::default()
        };
        assert_eq!(
            table(&r, None),
            "       COUNT  LINE\n        1000  /w/a.py:4\n          10  /w/a.py:3\n           7  ...pkg/deep/mod.py:9\n"
        );
        assert_eq!(table(&r, Some(1)).lines().count(), 2);
    }
}
