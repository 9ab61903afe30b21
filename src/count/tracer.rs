//! pycount's kernel side from userspace: loads bpf/count.bpf.c for one target, attaches it
//! through the target's function source, and reads per-function statistics out of its maps.
use std::collections::HashMap;

use libbpf_rs::MapCore;

use super::{CallReport, CountOptions, FunctionStats};
use crate::error::{Error, Result};
use crate::filter::{self, Pattern};
use crate::function::Function;
use crate::histogram::Histogram;
use crate::kernel::limits::{MAX_DEPTH, PATH_SCRATCH};
use crate::kernel::skel::count::{CountSkel, CountSkelBuilder};
use crate::kernel::types::{FnEntry, FnSlot, HistKey};
use crate::kernel::{Loaded, Probes, entries, load, loss_counters, record, same_struct};
use crate::losses::{Loss, Losses};
use crate::output::Never;
use crate::session::Tracer;
use crate::source::{FunctionPrograms, FunctionSource};
use crate::target::Target;
use crate::tools;

/// Loaded and attached call counting for one target.
pub struct CountTracer {
    skel: Loaded<CountSkel<'static>>,
    probes: Probes,
    latency: bool,
    pub source: FunctionSource,
    /// Calls the source cannot see on this target, said in every report.
    hidden: Option<&'static str>,
    filters: Vec<Pattern>,
}

impl CountTracer {
    pub fn attach(target: &Target, opts: &CountOptions) -> Result<CountTracer> {
        let (source, plan) = tools::require_functions(target, opts.latency)?;
        filter::require_qualnames(&opts.filters, source.qualnames().err())?;
        tools::check_file_names(target, &source.usdt_probes(plan), opts.force)?;
        let skel = load(CountSkelBuilder::default(), |open| {
            let ro = open
                .maps
                .rodata_data
                .as_deref_mut()
                .expect("count.bpf.c has rodata");
            ro.source = same_struct(&source.to_bpf());
            let (filters, nr_filters) = filter::table(&opts.filters);
            ro.filters = same_struct(&filters);
            ro.nr_filters = nr_filters;
            ro.timed = opts.latency;
            open.maps
                .functions
                .set_max_entries(opts.max_functions)
                .map_err(|e| Error::bpf("sizing the function table", e))?;
            if opts.lean_maps {
                let lean = |m: &mut libbpf_rs::OpenMapMut<'_>| {
                    m.set_map_flags(libbpf_rs::libbpf_sys::BPF_F_NO_PREALLOC)
                        .map_err(|e| Error::bpf("sizing the maps", e))
                };
                lean(&mut open.maps.functions)?;
                lean(&mut open.maps.latency_hist)?;
                lean(&mut open.maps.stacks)?;
                // Threads beyond the few direct-mapped stacks take the hash map.
                open.maps
                    .stack_slots
                    .set_max_entries(32)
                    .map_err(|e| Error::bpf("sizing the thread stacks", e))?;
            }
            let usdt = !plan.eval_frame;
            open.progs.call_entry.set_autoload(usdt && plan.entries);
            open.progs.call_return.set_autoload(usdt && plan.returns);
            open.progs.tracing_mode.set_autoload(plan.tracing_mode);
            open.progs.eval_entry.set_autoload(plan.eval_frame);
            open.progs
                .eval_return
                .set_autoload(plan.eval_frame && plan.returns);
            open.progs.init_entry.set_autoload(plan.init);
            Ok(())
        })?;
        let mut probes = skel.probes()?;
        source.attach(
            plan,
            &mut probes,
            target,
            FunctionPrograms {
                entry: &skel.progs.call_entry,
                ret: &skel.progs.call_return,
                tracing_mode: &skel.progs.tracing_mode,
                eval_entry: &skel.progs.eval_entry,
                eval_return: &skel.progs.eval_return,
                init: Some(&skel.progs.init_entry),
            },
        )?;
        Ok(CountTracer {
            skel,
            probes,
            latency: opts.latency,
            source,
            hidden: source.hidden(plan),
            filters: opts.filters.clone(),
        })
    }

    /// Every matched function's statistics: its table entry's plus its direct-mapped slot's.
    fn functions(&self) -> Result<Vec<FunctionStats>> {
        let mut functions = Vec::new();
        // In batches: a process's table is read every second by the agent.
        let batch = |e| Error::bpf("reading the function table", e);
        for (_, value) in entries(&self.skel.maps.functions).map_err(batch)? {
            let e: FnEntry = record(&value);
            if e.matched == 0 {
                continue;
            }
            functions.push(FunctionStats {
                function: Function::from_entry(&e),
                count: e.stats.count,
                timed: e.stats.timed,
                total_ns: e.stats.total_ns,
                max_ns: e.stats.max_ns,
                histogram: Histogram::default(),
            });
        }
        let by_id: HashMap<u32, usize> = functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.function.id, i))
            .collect();
        for (_, value) in entries(&self.skel.maps.fn_slots).map_err(batch)? {
            let slot: FnSlot = record(&value);
            if slot.name_ptr == 0 || slot.matched == 0 {
                continue;
            }
            if let Some(&i) = by_id.get(&slot.id) {
                let f = &mut functions[i];
                f.count += slot.stats.count;
                f.timed += slot.stats.timed;
                f.total_ns += slot.stats.total_ns;
                f.max_ns = f.max_ns.max(slot.stats.max_ns);
            }
        }
        functions.retain(|f| f.count > 0);
        if self.latency {
            self.add_histograms(&mut functions);
        }
        Ok(functions)
    }

    fn add_histograms(&self, functions: &mut [FunctionStats]) {
        let by_id: HashMap<u32, usize> = functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.function.id, i))
            .collect();
        let Ok(buckets) = entries(&self.skel.maps.latency_hist) else {
            return;
        };
        for (key, v) in buckets {
            let k: HistKey = record(&key);
            if let Some(&i) = by_id.get(&k.fn_id) {
                functions[i]
                    .histogram
                    .add(k.bucket, u64::from_ne_bytes(v[..8].try_into().unwrap()));
            }
        }
    }
}

impl Tracer for CountTracer {
    type Event = Never;
    type Report = CallReport;

    fn probes(&mut self) -> &mut Probes {
        &mut self.probes
    }

    fn read(&mut self) -> Result<CallReport> {
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref()
            .expect("count.bpf.c has bss");
        let losses = Losses::read(
            &loss_counters(&bss.losses),
            &[
                (
                    Loss::FunctionsFull,
                    Some(self.skel.maps.functions.max_entries().into()),
                ),
                (Loss::HistFull, None),
                (Loss::ThreadsFull, None),
                (Loss::TooDeep, Some(MAX_DEPTH as u64)),
                (Loss::UnpairedReturns, None),
                (Loss::CodeReadErrors, None),
                (Loss::ExitsUnseen, None),
                (Loss::FunctionPathsTruncated, Some(PATH_SCRATCH as u64 - 1)),
            ],
        );
        Ok(CallReport {
            functions: self.functions()?,
            losses,
            latency: self.latency,
            notes: self
                .hidden
                .iter()
                .map(|h| h.to_string())
                .chain(filter::unmatched_notes(&self.filters, bss.filter_hits))
                .collect(),
        })
    }
}
