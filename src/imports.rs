//! pyprobe imports' engine: loads bpf/imports.bpf.c for one target, receives each finished
//! module load, and builds the per-thread tree of which import triggered which.
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::mem::MaybeUninit;
use std::rc::Rc;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder};

use crate::attach;
use crate::bpf::imports::{ImportsSkel, ImportsSkelBuilder};
use crate::bpf::probe_types::{ImportEvent as RawImportEvent, ImportStack};
use crate::bpf::record;
use crate::count::c_string;
use crate::error::{Error, Result};
use crate::requirements;
use crate::target::Target;

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
    fn from_raw(r: &RawImportEvent) -> ImportEvent {
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

/// What the kernel could not pair or deliver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportLosses {
    pub events_lost: u64,
    /// Dones whose start was not seen (imports running when pyprobe attached).
    pub unpaired_dones: u64,
    pub too_deep: u64,
    pub threads_full: u64,
    /// Imports started but not finished when tracing ended.
    pub in_progress: u64,
}

impl ImportLosses {
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut say = |n: u64, what: &str| {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        };
        say(self.events_lost, "imports lost: ring buffer full");
        say(
            self.unpaired_dones,
            "imports not shown: already running when tracing started",
        );
        say(self.too_deep, "imports not shown: nested deeper than 32");
        say(self.threads_full, "imports not shown: too many threads");
        say(
            self.in_progress,
            "imports not shown: still running when tracing ended",
        );
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "events_lost": self.events_lost,
            "unpaired_dones": self.unpaired_dones,
            "too_deep": self.too_deep,
            "threads_full": self.threads_full,
            "in_progress": self.in_progress,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub roots: Vec<ImportNode>,
    pub losses: ImportLosses,
}

impl ImportReport {
    pub fn count(&self) -> usize {
        self.roots.iter().map(|r| r.count()).sum()
    }

    /// Time spent importing: the top-level imports' cumulative times.
    pub fn total_ns(&self) -> u64 {
        self.roots.iter().map(|r| r.cumulative_ns()).sum()
    }
}

/// Loaded and attached import tracing for one target; dropping it detaches both probes.
pub struct ImportTracer<'obj> {
    skel: ImportsSkel<'obj>,
    _links: Vec<Link>,
}

impl<'obj> ImportTracer<'obj> {
    pub fn attach(
        target: &Target,
        storage: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<ImportTracer<'obj>> {
        requirements::require(
            target,
            &["import__find__load__start", "import__find__load__done"],
        )?;
        let mut open = ImportsSkelBuilder::default()
            .open(storage)
            .map_err(|e| Error::bpf("opening the BPF object", e))?;
        open.maps
            .rodata_data
            .as_deref_mut()
            .expect("imports.bpf.c has rodata")
            .target_tgid = target.pid as u32;
        let skel = open
            .load()
            .map_err(|e| Error::bpf("loading the BPF programs", e))?;
        let mut links = Vec::new();
        for (prog, probe) in [
            (&skel.progs.import_start, "import__find__load__start"),
            (&skel.progs.import_done, "import__find__load__done"),
        ] {
            links.push(attach::usdt(prog, target, probe)?);
        }
        Ok(ImportTracer {
            skel,
            _links: links,
        })
    }

    /// A ring buffer that appends every finished import to `sink` when polled.
    pub fn events(&self, sink: Rc<RefCell<Vec<ImportEvent>>>) -> Result<RingBuffer<'_>> {
        let mut b = RingBufferBuilder::new();
        b.add(&self.skel.maps.import_events, move |bytes: &[u8]| {
            let raw: RawImportEvent = record(bytes);
            sink.borrow_mut().push(ImportEvent::from_raw(&raw));
            0
        })
        .map_err(|e| Error::bpf("reading import events", e))?;
        b.build()
            .map_err(|e| Error::bpf("reading import events", e))
    }

    /// The kernel's loss counters, and the imports still open on any thread.
    pub fn losses(&self) -> ImportLosses {
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref()
            .expect("imports.bpf.c has bss");
        let l = &bss.import_losses;
        let stacks = &self.skel.maps.import_stacks;
        let in_progress = stacks
            .keys()
            .filter_map(|k| stacks.lookup(&k, MapFlags::ANY).ok().flatten())
            .map(|v| u64::from(record::<ImportStack>(&v).depth))
            .sum();
        ImportLosses {
            events_lost: l.events_lost,
            unpaired_dones: l.unpaired_dones,
            too_deep: l.too_deep,
            threads_full: l.threads_full,
            in_progress,
        }
    }
}

/// Polls `rb` for up to `d` (the session's wait step).
pub fn poll(rb: &RingBuffer<'_>, d: Duration) -> Result<()> {
    crate::ring::poll(rb, d)
}

/// Distinct threads that imported, in order (to say which thread a tree belongs to).
pub fn threads(roots: &[ImportNode]) -> Vec<u32> {
    let t: BTreeSet<u32> = roots.iter().map(|r| r.event.tid).collect();
    t.into_iter().collect()
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

    #[test]
    fn losses_are_named() {
        assert!(ImportLosses::default().lines().is_empty());
        let l = ImportLosses {
            unpaired_dones: 2,
            ..Default::default()
        };
        assert_eq!(
            l.lines(),
            ["2 imports not shown: already running when tracing started"]
        );
    }
}
