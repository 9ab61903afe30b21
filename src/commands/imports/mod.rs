//! pyprobe imports: each module load timed in the kernel from import__find__load__start to
//! its done (bpf/imports.bpf.c), and the tree of which import triggered which.
mod json;
mod text;
mod tracer;

use std::collections::BTreeSet;

pub use tracer::ImportTracer;

use crate::abi::c_string;
use crate::abi::types::ImportEvent as RawImportEvent;
use crate::error::Result;
use crate::output::formats;
use crate::output::json::Documents;
use crate::output::text::Pages;
use crate::session::job::Job;
use crate::session::reported_once;
use crate::trace::losses::Losses;

formats!(pub ImportsFormat: Text, Json);

/// One finished module load, as import__find__load__done reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportEvent {
    pub module: String,
    pub module_truncated: bool,
    /// Whether the import succeeded (CPython passes `mod != NULL`).
    pub found: bool,
    pub tid: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl ImportEvent {
    pub fn from_raw(r: &RawImportEvent) -> ImportEvent {
        ImportEvent {
            module: c_string(&r.module),
            module_truncated: r.module_truncated != 0,
            found: r.found != 0,
            tid: r.tid,
            start_ns: r.start_ns,
            end_ns: r.end_ns,
        }
    }
}

/// An import and the imports it triggered, slowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportNode {
    pub event: ImportEvent,
    pub children: Vec<ImportNode>,
}

impl ImportNode {
    /// From start to done, the imports it triggered included.
    pub fn cumulative_ns(&self) -> u64 {
        self.event.end_ns.saturating_sub(self.event.start_ns)
    }

    /// Time not spent in the imports it triggered.
    pub fn self_ns(&self) -> u64 {
        let children: u64 = self.children.iter().map(|c| c.cumulative_ns()).sum();
        self.cumulative_ns().saturating_sub(children)
    }

    pub fn count(&self) -> usize {
        1 + self.children.iter().map(|c| c.count()).sum::<usize>()
    }
}

/// Nests imports by time within each thread (an import runs inside the one that triggered it)
/// and orders every level by cumulative time, slowest first.
pub fn build_tree(mut events: Vec<ImportEvent>) -> Vec<ImportNode> {
    events.sort_by_key(|e| (e.tid, e.start_ns, std::cmp::Reverse(e.end_ns)));
    let mut roots: Vec<ImportNode> = Vec::new();
    // Open ancestors of the current event, innermost last.
    let mut open: Vec<ImportNode> = Vec::new();
    let close = |open: &mut Vec<ImportNode>, roots: &mut Vec<ImportNode>| {
        let node = open.pop().expect("an open import");
        match open.last_mut() {
            Some(parent) => parent.children.push(node),
            None => roots.push(node),
        }
    };
    for e in events {
        while let Some(top) = open.last() {
            if top.event.tid == e.tid
                && e.start_ns >= top.event.start_ns
                && e.end_ns <= top.event.end_ns
            {
                break;
            }
            close(&mut open, &mut roots);
        }
        open.push(ImportNode {
            event: e,
            children: Vec::new(),
        });
    }
    while !open.is_empty() {
        close(&mut open, &mut roots);
    }
    sort_slowest_first(&mut roots);
    roots
}

fn sort_slowest_first(nodes: &mut [ImportNode]) {
    nodes.sort_by(|a, b| {
        b.cumulative_ns()
            .cmp(&a.cumulative_ns())
            .then_with(|| a.event.start_ns.cmp(&b.event.start_ns))
    });
    for n in nodes {
        sort_slowest_first(&mut n.children);
    }
}

#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub roots: Vec<ImportNode>,
    pub losses: Losses,
}

reported_once!(ImportReport);

impl ImportReport {
    pub fn count(&self) -> usize {
        self.roots.iter().map(|r| r.count()).sum()
    }

    /// Time spent importing: the top-level imports' cumulative times.
    pub fn total_ns(&self) -> u64 {
        self.roots.iter().map(|r| r.cumulative_ns()).sum()
    }
}

/// Distinct threads that imported, in order (to say which thread a tree belongs to).
pub fn threads(roots: &[ImportNode]) -> Vec<u32> {
    let t: BTreeSet<u32> = roots.iter().map(|r| r.event.tid).collect();
    t.into_iter().collect()
}

pub fn run(job: Job) -> Result<()> {
    job.trace("imports", ImportTracer::attach, |format, w| match format {
        ImportsFormat::Json => Box::new(Documents::reports(w, |r, _| json::report(r))),
        ImportsFormat::Text => Box::new(Pages::new(w, text::table)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(module: &str, tid: u32, start: u64, end: u64) -> ImportEvent {
        ImportEvent {
            module: module.into(),
            module_truncated: false,
            found: true,
            tid,
            start_ns: start,
            end_ns: end,
        }
    }

    fn names(nodes: &[ImportNode]) -> Vec<String> {
        nodes.iter().map(|n| n.event.module.clone()).collect()
    }

    #[test]
    fn nests_by_time_and_puts_the_slow_import_on_top() {
        // Arrival order is done order (post-order), as the ring buffer delivers it.
        let events = vec![
            ev("pkg.fast", 1, 110, 120),
            ev("pkg.slow", 1, 130, 430),
            ev("pkg.nested.leaf", 1, 450, 460),
            ev("pkg.nested", 1, 440, 470),
            ev("pkg", 1, 100, 500),
            ev("json", 1, 10, 60),
            ev("other", 2, 200, 210),
        ];
        let roots = build_tree(events);
        assert_eq!(names(&roots), ["pkg", "json", "other"]);
        let pkg = &roots[0];
        assert_eq!(names(&pkg.children), ["pkg.slow", "pkg.nested", "pkg.fast"]);
        assert_eq!(names(&pkg.children[1].children), ["pkg.nested.leaf"]);
        assert_eq!(pkg.cumulative_ns(), 400);
        assert_eq!(pkg.self_ns(), 400 - 300 - 30 - 10);
        assert_eq!(pkg.count(), 5);
        assert_eq!(threads(&roots), [1, 2]);
        let r = ImportReport {
            roots,
            ..Default::default()
        };
        assert_eq!(r.count(), 7);
        assert_eq!(r.total_ns(), 400 + 50 + 10);
    }

    #[test]
    fn threads_do_not_nest_into_each_other() {
        let roots = build_tree(vec![ev("a", 1, 100, 500), ev("b", 2, 200, 300)]);
        assert_eq!(names(&roots), ["a", "b"]);
        assert!(roots[0].children.is_empty());
    }
}
