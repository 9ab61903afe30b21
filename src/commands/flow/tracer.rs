//! pyflow's kernel side from userspace: loads bpf/flow.bpf.c for one target, attaches it
//! through the target's function source, and turns its records into flow events, naming their
//! functions and putting `--min-duration` calls back in call order.
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, MapFlags};

use super::trees::{CallTrees, Completed};
use super::{EventKind, FlowEvent, FlowOptions, FlowSummary};
use crate::abi::limits::FLOW_MAX_DEPTH;
use crate::abi::skel::flow::{FlowSkel, FlowSkelBuilder};
use crate::abi::types::{FlowKind, FlowRecord, FnEntry};
use crate::abi::{loss_counters, monotonic_ns, record, same_struct};
use crate::commands::tools;
use crate::error::Result;
use crate::kernel::{Loaded, Probes, Ring, globals, load, size};
use crate::session::Tracer;
use crate::session::probes_in_field;
use crate::signals::stop_requested;
use crate::source::{FunctionSource, Plan, function_programs};
use crate::target::Target;
use crate::trace::filter::{self, Pattern};
use crate::trace::function::Function;
use crate::trace::losses::{Loss, Losses, of_call_pairing};

/// Loaded and attached flow tracing for one target.
pub struct FlowTracer {
    pub source: FunctionSource,
    hidden: Option<&'static str>,
    filters: Vec<Pattern>,
    skel: Loaded<FlowSkel<'static>>,
    probes: Probes,
    ring: Ring<FlowRecord>,
    /// CLOCK_MONOTONIC (the clock of bpf_ktime_get_ns) just before the probes went live.
    start_ns: u64,
    functions: HashMap<u32, Rc<Function>>,
    named_keys: HashSet<Vec<u8>>,
    trees: CallTrees,
    summary: FlowSummary,
    /// Losses already told on stderr, and when.
    lost_said: u64,
    lost_said_at: Option<Instant>,
}

probes_in_field!(FlowTracer);

impl FlowTracer {
    /// The program's globals (losses, filter hits).
    fn bss(&self) -> &crate::abi::skel::flow::types::bss {
        globals(self.skel.maps.bss_data.as_deref())
    }

    pub fn attach(target: &Target, opts: &FlowOptions) -> Result<FlowTracer> {
        let (source, plan) = tools::require_functions(target, true)?;
        filter::require_qualnames(&opts.filters, source.qualnames().err())?;
        tools::check_file_names(target, &source.usdt_probes(plan), opts.force)?;
        // 3.13's __init__ frames entered without the function have no return to pair: pyflow
        // does not show them (and says so).
        let plan = Plan {
            init: false,
            ..plan
        };
        let skel = load(FlowSkelBuilder::default(), |open| {
            let ro = globals(open.maps.rodata_data.as_deref_mut());
            ro.source = same_struct(&source.to_bpf());
            let (filters, nr_filters) = filter::table(&opts.filters);
            ro.filters = same_struct(&filters);
            ro.nr_filters = nr_filters;
            ro.only_tid = opts.tid.unwrap_or(0);
            ro.subtree = opts.subtree;
            ro.max_depth = opts.max_depth.unwrap_or(0);
            ro.calls_on_return = opts.min_duration.is_some();
            ro.min_duration_ns = opts.min_duration.map_or(0, |d| d.as_nanos() as u64);
            ro.wakeup_bytes = u64::from(opts.buffer_size / 4);
            size(&mut open.maps.events, opts.buffer_size, "ring buffer")?;
            size(
                &mut open.maps.functions,
                opts.max_functions,
                "function table",
            )?;
            plan.autoload(function_programs!(&mut open.progs));
            Ok(())
        })?;
        let mut probes = skel.probes()?;
        source.attach(
            plan,
            &mut probes,
            target,
            // __init__ frames entered without the function have no return to pair: no `init`.
            function_programs!(&skel.progs),
        )?;
        let ring = Ring::open(&skel.maps.events)?;
        Ok(FlowTracer {
            hidden: source.hidden(plan),
            source,
            filters: opts.filters.clone(),
            skel,
            probes,
            ring,
            start_ns: monotonic_ns(),
            functions: HashMap::new(),
            named_keys: HashSet::new(),
            trees: CallTrees::default(),
            summary: FlowSummary {
                calls_mode: opts.min_duration.is_some(),
                ..Default::default()
            },
            lost_said: 0,
            lost_said_at: None,
        })
    }

    fn losses(&self) -> Losses {
        let bss = self.bss();
        let lost = if self.summary.calls_mode {
            Loss::CallsLost
        } else {
            Loss::EventsLost
        };
        let table = Some(self.skel.maps.functions.max_entries().into());
        let own = [(lost, None), (Loss::FunctionsFull, table)];
        Losses::read(
            &loss_counters(&bss.losses),
            &[&own[..], &of_call_pairing(FLOW_MAX_DEPTH)].concat(),
        )
    }

    /// The function with this id. The kernel names a function before it sends an event about
    /// it, so an unknown id means new entries in the function table: read those.
    fn function(&mut self, id: u32) -> Rc<Function> {
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
            self.functions
                .insert(e.id, Rc::new(Function::from_entry(&e)));
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

    /// Turns kernel records into flow events (through the call trees for --min-duration).
    fn events(&mut self, records: &[FlowRecord], out: &mut Vec<FlowEvent>) {
        for r in records {
            let function = self.function(r.fn_id);
            let time_ns = r.ts.saturating_sub(self.start_ns);
            let kind = match r.kind {
                FlowKind::FLOW_CALL => {
                    let call = Completed {
                        pid: r.pid,
                        tid: r.tid,
                        depth: r.depth,
                        start_ns: time_ns,
                        duration_ns: r.duration_ns,
                        function,
                    };
                    self.trees.add(call, out);
                    continue;
                }
                FlowKind::FLOW_ENTRY => EventKind::Call,
                FlowKind::FLOW_RETURN | FlowKind::FLOW_UNWOUND => EventKind::Return,
                other => unreachable!("bpf/flow.bpf.c sends no record of kind {}", other.0),
            };
            out.push(FlowEvent {
                kind,
                time_ns,
                pid: r.pid,
                tid: r.tid,
                depth: r.depth,
                function,
                duration_ns: (kind == EventKind::Return).then_some(r.duration_ns),
                unwound: r.kind == FlowKind::FLOW_UNWOUND,
            });
        }
    }

    /// Tells of records lost as it happens, at most once a second so that a flood of losses
    /// does not flood the terminal.
    fn say_losses(&mut self) {
        if stop_requested() {
            return;
        }
        let lost = self.skel.maps.bss_data.as_deref().map_or(0, |b| {
            // SAFETY: a counter the kernel updates under us: read it afresh.
            unsafe { std::ptr::read_volatile(&b.losses.events_lost) }
        });
        let due = self
            .lost_said_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if lost > self.lost_said && due {
            eprintln!(
                "pyflow: {lost} {} lost so far: ring buffer full (raise --buffer-size)",
                if self.summary.calls_mode {
                    "calls"
                } else {
                    "events"
                }
            );
            self.lost_said = lost;
            self.lost_said_at = Some(Instant::now());
        }
    }

    /// What the session showed and lost, after it ended.
    pub fn read_summary(&self) -> FlowSummary {
        FlowSummary {
            losses: self.losses(),
            notes: self.hidden.iter().map(|h| h.to_string()).collect(),
            ..self.summary.clone()
        }
    }
}

impl Tracer for FlowTracer {
    type Event = FlowEvent;
    type Report = FlowSummary;

    fn poll(&mut self, timeout: Duration, events: &mut Vec<FlowEvent>) -> Result<()> {
        let records = self.ring.poll(timeout)?;
        self.summary.delivered += records.len() as u64;
        let before = events.len();
        self.events(&records, events);
        self.summary.events += (events.len() - before) as u64;
        self.say_losses();
        Ok(())
    }

    fn drain(&mut self, events: &mut Vec<FlowEvent>) -> Result<()> {
        self.poll(Duration::ZERO, events)?;
        let before = events.len();
        self.trees.flush(events);
        self.summary.events += (events.len() - before) as u64;
        Ok(())
    }

    fn read(&mut self) -> Result<FlowSummary> {
        Ok(self.read_summary())
    }

    fn unmatched_filters(&mut self, so_far: Option<Duration>) -> Vec<String> {
        let bss = self.bss();
        filter::unmatched(&self.filters, bss.filter_hits, so_far)
    }
}
