//! pyflow's engine: loads bpf/flow.bpf.c for one target, streams its call and return records out
//! of the ring buffer, names their functions, and puts `--min-duration` calls back in call order.
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem::MaybeUninit;
use std::rc::Rc;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder};

use crate::attach;
use crate::bpf::flow::{FlowSkel, FlowSkelBuilder};
use crate::bpf::types::{FlowRecord, FnEntry};
use crate::bpf::{record, same_struct};
use crate::count::{c_string, strategy_for};
use crate::error::{Error, Result};
use crate::filter::Pattern;
use crate::losses::Losses;
use crate::target::Target;

/// Record kinds, as in bpf/pyprobe.h.
const FLOW_ENTRY: u32 = 1;
const FLOW_RETURN: u32 = 2;
const FLOW_CALL: u32 = 3;
const FLOW_UNWOUND: u32 = 4;
/// The deepest call the kernel side follows (FLOW_MAX_DEPTH in bpf/pyprobe.h).
pub const FLOW_MAX_DEPTH: u32 = 1024;

/// What pyflow shows, validated; every choice is made in the kernel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowOptions {
    pub filters: Vec<Pattern>,
    pub subtree: bool,
    /// Shown calls nest at most this deep (1: only the outermost).
    pub max_depth: Option<u32>,
    pub tid: Option<u32>,
    pub min_duration: Option<Duration>,
    /// Ring buffer size in bytes: a power of two, a multiple of the page size.
    pub buffer_size: u32,
    pub max_functions: u32,
}

/// Parses a `--buffer-size` (bytes, or with a K or M suffix) and checks what the kernel demands.
pub fn parse_buffer_size(text: &str) -> std::result::Result<u32, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        _ => {
            return Err(format!(
                "--buffer-size {text:?}: use bytes, or a K or M suffix"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("--buffer-size {text:?} is not a size"))?;
    let bytes = n.saturating_mul(mult);
    let page = page_size();
    if bytes < page || !bytes.is_power_of_two() || bytes > 1 << 30 {
        return Err(format!(
            "--buffer-size {text:?} must be a power of two from {}K to 1024M (the kernel's ring buffer rule)",
            page >> 10
        ));
    }
    Ok(bytes as u32)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// A function as pyflow names it: `file:line name`, line being its def line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Function {
    pub id: u32,
    pub file: String,
    pub line: u32,
    pub name: String,
    pub name_truncated: bool,
    pub file_truncated: bool,
}

impl Function {
    /// `file:line name`, marking what the kernel had to cut (as pycount does).
    pub fn label(&self) -> String {
        format!(
            "{}{}:{} {}{}",
            if self.file_truncated { "..." } else { "" },
            self.file,
            self.line,
            self.name,
            if self.name_truncated {
                "...[truncated]"
            } else {
                ""
            }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Call,
    Return,
}

/// One line of the flow: a call or a return, in its thread's program order.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowEvent {
    pub kind: EventKind,
    /// Since tracing began.
    pub time_ns: u64,
    pub pid: u32,
    pub tid: u32,
    /// Shown calls around this one in its thread (0: outermost).
    pub depth: u32,
    pub function: Rc<Function>,
    /// On returns: how long the call took.
    pub duration_ns: Option<u64>,
    /// A return inferred for a frame that exited by exception without firing its probe (3.15).
    pub unwound: bool,
}

/// What a session showed and what it could not.
#[derive(Debug, Clone, Default)]
pub struct FlowSummary {
    /// Records delivered by the kernel: events, or with --min-duration, calls.
    pub delivered: u64,
    /// Lines of flow written (a call and its return are two).
    pub events: u64,
    pub losses: Losses,
    /// Records are whole calls (--min-duration), so a lost one is a call, not an event.
    pub calls_mode: bool,
}

impl FlowSummary {
    /// Human lines for every non-zero loss, in pyflow's terms; empty when nothing was lost.
    pub fn loss_lines(&self) -> Vec<String> {
        let l = &self.losses;
        let mut out = Vec::new();
        let mut say = |n: u64, what: String| {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        };
        say(
            l.events_lost,
            format!(
                "{} lost: ring buffer full (raise --buffer-size)",
                if self.calls_mode { "calls" } else { "events" }
            ),
        );
        say(
            l.functions_full,
            format!(
                "calls not shown: function table full ({} functions; raise --max-functions)",
                l.table_size
            ),
        );
        say(l.threads_full, "calls not shown: too many threads".into());
        say(
            l.too_deep,
            format!("calls not shown: nested deeper than {FLOW_MAX_DEPTH} frames"),
        );
        say(
            l.unpaired_returns,
            "returns not shown: their call was already running when tracing began".into(),
        );
        say(
            l.code_read_errors,
            "probe hits whose code object could not be read".into(),
        );
        out
    }
}

/// Loaded and attached flow tracing for one target; `detach` (or drop) removes every probe.
pub struct FlowTracer<'obj> {
    skel: FlowSkel<'obj>,
    links: Vec<Link>,
    /// CLOCK_MONOTONIC (the clock of bpf_ktime_get_ns) just before the probes went live.
    start_ns: u64,
    functions: HashMap<u32, Rc<Function>>,
    named_keys: HashSet<Vec<u8>>,
    pub calls_mode: bool,
}

impl<'obj> FlowTracer<'obj> {
    pub fn attach(
        target: &Target,
        opts: &FlowOptions,
        storage: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<FlowTracer<'obj>> {
        let strategy = strategy_for(target)?;
        let mut open = FlowSkelBuilder::default()
            .open(storage)
            .map_err(|e| Error::bpf("opening the BPF object", e))?;
        let ro = open
            .maps
            .rodata_data
            .as_deref_mut()
            .expect("flow.bpf.c has rodata");
        ro.target_tgid = target.pid as u32;
        ro.layout = same_struct(&strategy.layout.unwrap_or_default());
        for (slot, p) in ro.filters.iter_mut().zip(&opts.filters) {
            *slot = same_struct(&p.to_bpf());
        }
        ro.nr_filters = opts.filters.len() as u32;
        ro.name_reg_entry = target.elf.arg_register("function__entry", 1);
        ro.name_reg_return = target.elf.arg_register("function__return", 1);
        ro.only_tid = opts.tid.unwrap_or(0);
        ro.subtree = opts.subtree;
        ro.max_depth = opts.max_depth.unwrap_or(0);
        ro.calls_on_return = opts.min_duration.is_some();
        ro.min_duration_ns = opts.min_duration.map_or(0, |d| d.as_nanos() as u64);
        // The frame address pairs exactly where it can be read (3.11); elsewhere the name does.
        ro.pair_by_frame = strategy.layout.is_some();
        // Where entries are counted, returns are the unreliable side (3.15 exceptions).
        ro.unwind_search = strategy.count_on_entry;
        ro.wakeup_bytes = u64::from(opts.buffer_size / 4);
        open.maps
            .events
            .set_max_entries(opts.buffer_size)
            .map_err(|e| Error::bpf("sizing the ring buffer", e))?;
        if opts.max_functions > 0 {
            open.maps
                .functions
                .set_max_entries(opts.max_functions)
                .map_err(|e| Error::bpf("sizing the function table", e))?;
        }
        let tracing_mode = strategy.entry_needs_tracing_mode;
        open.progs.tracing_mode.set_autoload(tracing_mode);
        let skel = open
            .load()
            .map_err(|e| Error::bpf("loading the BPF programs", e))?;

        let start_ns = monotonic_ns();
        // Returns first: see CallCounter::attach.
        let mut links = vec![
            attach::usdt(&skel.progs.flow_return, target, "function__return")?,
            attach::usdt(&skel.progs.flow_entry, target, "function__entry")?,
        ];
        if tracing_mode {
            links.push(attach::hold_line_semaphore(
                &skel.progs.tracing_mode,
                target,
            )?);
        }
        Ok(FlowTracer {
            skel,
            links,
            start_ns,
            functions: HashMap::new(),
            named_keys: HashSet::new(),
            calls_mode: opts.min_duration.is_some(),
        })
    }

    /// A ring buffer reader that appends every record to `records`.
    pub fn ring_buffer(
        &self,
        records: Rc<RefCell<Vec<FlowRecord>>>,
    ) -> Result<RingBuffer<'static>> {
        let mut b = RingBufferBuilder::new();
        b.add(&self.skel.maps.events, move |bytes: &[u8]| {
            records.borrow_mut().push(record(bytes));
            0
        })
        .map_err(|e| Error::bpf("opening the ring buffer", e))?;
        b.build()
            .map_err(|e| Error::bpf("opening the ring buffer", e))
    }

    /// Removes every probe; the maps stay readable.
    pub fn detach(&mut self) {
        self.links.clear();
    }

    pub fn losses(&self) -> Losses {
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref()
            .expect("flow.bpf.c has bss");
        // SAFETY: the counters live in memory the kernel updates under us: read it afresh.
        let counters = unsafe { std::ptr::read_volatile(&bss.losses) };
        Losses::from_bpf(
            &same_struct(&counters),
            self.skel.maps.functions.max_entries(),
        )
    }

    /// The function with this id. The kernel names a function before it sends an event about
    /// it, so an unknown id means new entries in the function table: read those.
    pub fn function(&mut self, id: u32) -> Rc<Function> {
        if let Some(f) = self.functions.get(&id) {
            return f.clone();
        }
        let map = &self.skel.maps.functions;
        for key in map.keys() {
            if self.named_keys.contains(&key) {
                continue;
            }
            let Ok(Some(value)) = map.lookup(&key, MapFlags::ANY) else {
                continue;
            };
            let e: FnEntry = record(&value);
            self.functions.insert(
                e.id,
                Rc::new(Function {
                    id: e.id,
                    file: c_string(&e.file),
                    line: e.firstlineno,
                    name: c_string(&e.name),
                    name_truncated: e.name_truncated != 0,
                    file_truncated: e.file_truncated != 0,
                }),
            );
            self.named_keys.insert(key);
        }
        self.functions
            .entry(id)
            .or_insert_with(|| {
                Rc::new(Function {
                    id,
                    name: format!("<function {id}>"),
                    ..Default::default()
                })
            })
            .clone()
    }

    /// Turns kernel records into flow events (through `trees` for --min-duration calls).
    pub fn events(
        &mut self,
        records: &[FlowRecord],
        trees: &mut CallTrees,
        out: &mut Vec<FlowEvent>,
    ) {
        for r in records {
            let function = self.function(r.fn_id);
            let time_ns = r.ts.saturating_sub(self.start_ns);
            match r.kind {
                FLOW_CALL => trees.add(
                    Completed {
                        pid: r.pid,
                        tid: r.tid,
                        depth: r.depth,
                        start_ns: time_ns,
                        duration_ns: r.duration_ns,
                        function,
                    },
                    out,
                ),
                FLOW_ENTRY | FLOW_RETURN | FLOW_UNWOUND => out.push(FlowEvent {
                    kind: if r.kind == FLOW_ENTRY {
                        EventKind::Call
                    } else {
                        EventKind::Return
                    },
                    time_ns,
                    pid: r.pid,
                    tid: r.tid,
                    depth: r.depth,
                    function,
                    duration_ns: (r.kind != FLOW_ENTRY).then_some(r.duration_ns),
                    unwound: r.kind == FLOW_UNWOUND,
                }),
                other => unreachable!("bpf/flow.bpf.c sends no record of kind {other}"),
            }
        }
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A call known whole: sent by the kernel at its return under --min-duration.
#[derive(Debug, Clone)]
pub struct Completed {
    pub pid: u32,
    pub tid: u32,
    pub depth: u32,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub function: Rc<Function>,
}

impl Completed {
    fn end_ns(&self) -> u64 {
        self.start_ns + self.duration_ns
    }

    fn contains(&self, inner: &Completed) -> bool {
        inner.depth > self.depth
            && inner.start_ns >= self.start_ns
            && inner.end_ns() <= self.end_ns()
    }
}

#[derive(Debug)]
struct CallTree {
    call: Completed,
    children: Vec<CallTree>,
}

/// Puts calls that arrive at their returns (callees first) back in call order. A callee lasts
/// no longer than its caller, so every shown call's shown callers are long enough to be shown
/// too: a call at depth 0 completes a tree, printed whole. A call whose caller was lost in the
/// ring buffer is printed on its own once it is clear that no caller will come.
#[derive(Debug, Default)]
pub struct CallTrees {
    pending: BTreeMap<u32, Vec<CallTree>>,
}

impl CallTrees {
    pub fn add(&mut self, call: Completed, out: &mut Vec<FlowEvent>) {
        let pending = self.pending.entry(call.tid).or_default();
        let mut children = Vec::new();
        while pending.last().is_some_and(|t| call.contains(&t.call)) {
            children.push(pending.pop().unwrap());
        }
        children.reverse();
        // Deeper calls left over ended before this one began: their caller was lost.
        let (orphans, kept): (Vec<CallTree>, Vec<CallTree>) = std::mem::take(pending)
            .into_iter()
            .partition(|t| t.call.depth > call.depth);
        *pending = kept;
        for t in orphans {
            t.flatten(out);
        }
        let tree = CallTree { call, children };
        if tree.call.depth == 0 {
            tree.flatten(out);
        } else {
            pending.push(tree);
        }
    }

    /// At the end: calls whose callers were still running (or lost), in order.
    pub fn flush(&mut self, out: &mut Vec<FlowEvent>) {
        for (_, trees) in std::mem::take(&mut self.pending) {
            for t in trees {
                t.flatten(out);
            }
        }
    }
}

impl CallTree {
    fn flatten(self, out: &mut Vec<FlowEvent>) {
        let c = &self.call;
        let event = |kind, time_ns, duration_ns| FlowEvent {
            kind,
            time_ns,
            pid: c.pid,
            tid: c.tid,
            depth: c.depth,
            function: c.function.clone(),
            duration_ns,
            unwound: false,
        };
        out.push(event(EventKind::Call, c.start_ns, None));
        let ret = event(EventKind::Return, c.end_ns(), Some(c.duration_ns));
        for child in self.children {
            child.flatten(out);
        }
        out.push(ret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, depth: u32, start: u64, dur: u64) -> Completed {
        Completed {
            pid: 1,
            tid: 1,
            depth,
            start_ns: start,
            duration_ns: dur,
            function: Rc::new(Function {
                name: name.into(),
                ..Default::default()
            }),
        }
    }

    fn lines(out: &[FlowEvent]) -> Vec<String> {
        out.iter()
            .map(|e| {
                format!(
                    "{}{}{}@{}",
                    "  ".repeat(e.depth as usize),
                    if e.kind == EventKind::Call {
                        "->"
                    } else {
                        "<-"
                    },
                    e.function.name,
                    e.time_ns
                )
            })
            .collect()
    }

    #[test]
    fn calls_sent_at_return_come_out_in_call_order() {
        let mut trees = CallTrees::default();
        let mut out = Vec::new();
        // a(0..100) calls b(10..40) which calls c(20..30), then d(50..90).
        trees.add(call("c", 2, 20, 10), &mut out);
        trees.add(call("b", 1, 10, 30), &mut out);
        trees.add(call("d", 1, 50, 40), &mut out);
        assert!(out.is_empty(), "nothing before the outermost call returns");
        trees.add(call("a", 0, 0, 100), &mut out);
        assert_eq!(
            lines(&out),
            [
                "->a@0",
                "  ->b@10",
                "    ->c@20",
                "    <-c@30",
                "  <-b@40",
                "  ->d@50",
                "  <-d@90",
                "<-a@100"
            ]
        );
    }

    #[test]
    fn a_call_whose_caller_was_lost_still_shows() {
        let mut trees = CallTrees::default();
        let mut out = Vec::new();
        trees.add(call("x", 1, 10, 5), &mut out); // its caller (0..20) was lost
        trees.add(call("y", 0, 30, 10), &mut out);
        assert_eq!(lines(&out), ["  ->x@10", "  <-x@15", "->y@30", "<-y@40"]);
        trees.add(call("z", 3, 50, 1), &mut out);
        trees.flush(&mut out);
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn buffer_sizes_follow_the_kernel_rules() {
        assert_eq!(parse_buffer_size("4096"), Ok(4096));
        assert_eq!(parse_buffer_size("64K"), Ok(65536));
        assert_eq!(parse_buffer_size("4M"), Ok(4 << 20));
        assert!(
            parse_buffer_size("3000")
                .unwrap_err()
                .contains("power of two")
        );
        assert!(parse_buffer_size("1024").is_err());
        assert!(parse_buffer_size("12G").is_err());
        assert!(parse_buffer_size("x").is_err());
    }

    #[test]
    fn every_loss_is_said_in_flow_terms() {
        let s = FlowSummary {
            losses: Losses {
                events_lost: 5,
                unpaired_returns: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        let lines = s.loss_lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("5 events lost"), "{lines:?}");
        assert!(lines[1].starts_with("2 returns not shown"), "{lines:?}");
        assert!(FlowSummary::default().loss_lines().is_empty());
    }
}
