//! pyprobe imports as text: the import tree, slowest first, with cumulative and self time.

use crate::commands::imports::{ImportNode, ImportReport, threads};
use crate::escape::escape;
use crate::output::duration;

pub fn table(report: &ImportReport) -> String {
    let mut out = format!("{:>12} {:>12}  MODULE\n", "CUMULATIVE", "SELF");
    let many_threads = threads(&report.roots).len() > 1;
    for root in &report.roots {
        row(&mut out, root, 0, many_threads);
    }
    let not_found = count_where(&report.roots, &|n| !n.event.found);
    out.push_str(&format!(
        "{} imports ({} not found), {} in top-level imports\n",
        report.count(),
        not_found,
        duration(report.total_ns())
    ));
    out.push_str(&crate::output::text::warnings(&report.losses));
    out
}

fn row(out: &mut String, n: &ImportNode, depth: usize, many_threads: bool) {
    out.push_str(&format!(
        "{:>12} {:>12}  {}{}{}{}{}\n",
        duration(n.cumulative_ns()),
        duration(n.self_ns()),
        "  ".repeat(depth),
        escape(&n.event.module),
        if n.event.module_truncated {
            "...[truncated]"
        } else {
            ""
        },
        if n.event.found { "" } else { " (not found)" },
        if many_threads && depth == 0 {
            format!(" [thread {}]", n.event.tid)
        } else {
            String::new()
        }
    ));
    for c in &n.children {
        row(out, c, depth + 1, many_threads);
    }
}

fn count_where(nodes: &[ImportNode], pred: &dyn Fn(&ImportNode) -> bool) -> usize {
    nodes
        .iter()
        .map(|n| usize::from(pred(n)) + count_where(&n.children, pred))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::imports::{ImportEvent, build_tree};

    fn ev(module: &str, found: bool, start: u64, end: u64) -> ImportEvent {
        ImportEvent {
            module: module.into(),
            module_truncated: false,
            found,
            tid: 7,
            start_ns: start,
            end_ns: end,
        }
    }

    #[test]
    fn the_tree_is_indented_slowest_first() {
        let r = ImportReport {
            roots: build_tree(vec![
                ev("pkg.fast", true, 1_000, 2_000),
                ev("pkg.slow", true, 3_000, 300_003_000),
                ev("pkg.gone", false, 300_004_000, 300_005_000),
                ev("pkg", true, 0, 300_010_000),
            ]),
            ..Default::default()
        };
        assert_eq!(
            table(&r),
            concat!(
                "  CUMULATIVE         SELF  MODULE\n",
                "    300.01ms        8.0us  pkg\n",
                "    300.00ms     300.00ms    pkg.slow\n",
                "       1.0us        1.0us    pkg.fast\n",
                "       1.0us        1.0us    pkg.gone (not found)\n",
                "4 imports (1 not found), 300.01ms in top-level imports\n",
            )
        );
        let v = crate::commands::imports::json::report(&r);
        assert_eq!(v["imports"][0]["children"][0]["module"], "pkg.slow");
        assert_eq!(v["imports"][0]["self_ns"], 8_000);
        assert_eq!(v["count"], 4);
    }
}
