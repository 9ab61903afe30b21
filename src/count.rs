//! pycount's engine: loads bpf/calls.bpf.c for one target, attaches it, and reads per-function
//! call statistics out of the kernel maps.
use std::collections::HashMap;
use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};

use crate::attach;
use crate::bpf::calls::{CallsSkel, CallsSkelBuilder};
use crate::bpf::record;
use crate::bpf::types::{FnEntry, FnSlot, HistKey};
use crate::error::{Error, Result};
use crate::filter::Pattern;
use crate::histogram::{Histogram, window_max};
use crate::losses::Losses;
use crate::target::Target;
use crate::versions::{self, CallStrategy};

#[derive(Debug, Clone, Default)]
pub struct CountOptions {
    pub filters: Vec<Pattern>,
    pub latency: bool,
    pub max_functions: u32,
}

/// One function's statistics; `file:line name` names it, `line` being its def line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionStats {
    pub id: u32,
    pub file: String,
    pub line: i32,
    pub name: String,
    pub name_truncated: bool,
    pub file_truncated: bool,
    pub count: u64,
    /// Calls whose duration was measured (entry and return both seen).
    pub timed: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    pub histogram: Histogram,
}

impl FunctionStats {
    /// Latency percentiles; a bucket midpoint never reports more than the exact maximum.
    pub fn percentiles(&self, qs: &[f64]) -> Vec<u64> {
        let cap = if self.max_ns > 0 {
            self.max_ns
        } else {
            u64::MAX
        };
        self.histogram
            .percentiles(qs)
            .into_iter()
            .map(|p| p.min(cap))
            .collect()
    }

    pub fn avg_ns(&self) -> u64 {
        self.total_ns.checked_div(self.timed).unwrap_or(0)
    }

    /// The statistics gained since an earlier reading of the same function.
    pub fn since(&self, earlier: &FunctionStats) -> FunctionStats {
        let histogram = self.histogram.since(&earlier.histogram);
        FunctionStats {
            count: self.count - earlier.count.min(self.count),
            timed: self.timed - earlier.timed.min(self.timed),
            total_ns: self.total_ns - earlier.total_ns.min(self.total_ns),
            max_ns: window_max(&histogram, self.max_ns, earlier.max_ns),
            histogram,
            ..self.clone()
        }
    }
}

/// A reading of every matched function, plus what was lost.
#[derive(Debug, Clone, Default)]
pub struct CallReport {
    pub functions: Vec<FunctionStats>,
    pub losses: Losses,
    pub latency: bool,
}

impl CallReport {
    /// The calls made since an earlier reading (for --interval).
    pub fn since(&self, earlier: &CallReport) -> CallReport {
        let before: HashMap<u32, &FunctionStats> =
            earlier.functions.iter().map(|f| (f.id, f)).collect();
        let functions = self
            .functions
            .iter()
            .map(|f| match before.get(&f.id) {
                Some(e) => f.since(e),
                None => f.clone(),
            })
            .filter(|f| f.count > 0)
            .collect();
        CallReport {
            functions,
            losses: self.losses.since(&earlier.losses),
            latency: self.latency,
        }
    }

    pub fn total_calls(&self) -> u64 {
        self.functions.iter().map(|f| f.count).sum()
    }
}

/// Decides how to count on this target, or says why it cannot be done here.
pub fn strategy_for(target: &Target) -> Result<CallStrategy> {
    target.require_probes()?;
    let version = target.version.ok_or_else(|| {
        Error::ProbeUnavailable(format!(
            "cannot tell the CPython version of {}; pyprobe needs it to know which probes fire",
            target.interpreter
        ))
    })?;
    let mut strategy = versions::call_strategy(version).map_err(Error::ProbeUnavailable)?;
    for probe in ["function__entry", "function__return"] {
        if target.elf.probe(probe).is_none() {
            return Err(Error::ProbeUnavailable(format!(
                "{} (CPython {version}) has no {probe} probe; what works here: pygc, pyprobe imports, pyprobe audit",
                target.interpreter
            )));
        }
    }
    if let Some(layout) = strategy.layout.as_mut() {
        match target.elf.symbol("_PyRuntime") {
            Some(addr) => layout.runtime_addr = target.runtime_addr(addr),
            // Without the code object, entries (in tracing mode) are the exact place to count.
            None => {
                strategy.layout = None;
                strategy.count_on_entry = true;
            }
        }
    }
    if strategy.entry_needs_tracing_mode && target.elf.probe("line").is_none() {
        return Err(Error::ProbeUnavailable(format!(
            "{} has no line probe, whose semaphore CPython {version} needs for function__entry",
            target.interpreter
        )));
    }
    Ok(strategy)
}

/// Loaded and attached call counting for one target; dropping it detaches every probe.
pub struct CallCounter<'obj> {
    skel: CallsSkel<'obj>,
    _links: Vec<Link>,
    latency: bool,
    pub strategy: CallStrategy,
}

impl<'obj> CallCounter<'obj> {
    pub fn attach(
        target: &Target,
        opts: &CountOptions,
        storage: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<CallCounter<'obj>> {
        let strategy = strategy_for(target)?;
        let mut open = CallsSkelBuilder::default()
            .open(storage)
            .map_err(|e| Error::bpf("opening the BPF object", e))?;
        let ro = open
            .maps
            .rodata_data
            .as_deref_mut()
            .expect("calls.bpf.c has rodata");
        ro.layout = strategy.layout.unwrap_or_default();
        for (slot, p) in ro.filters.iter_mut().zip(&opts.filters) {
            *slot = p.to_bpf();
        }
        ro.nr_filters = opts.filters.len() as u32;
        ro.timed = opts.latency;
        ro.count_on_entry = strategy.count_on_entry;
        ro.name_reg_entry = target.elf.arg_register("function__entry", 1);
        ro.name_reg_return = target.elf.arg_register("function__return", 1);
        if opts.max_functions > 0 {
            open.maps
                .functions
                .set_max_entries(opts.max_functions)
                .map_err(|e| Error::bpf("sizing the function table", e))?;
        }
        let needs_entry = opts.latency || strategy.count_on_entry;
        let needs_return = opts.latency || !strategy.count_on_entry;
        let tracing_mode = needs_entry && strategy.entry_needs_tracing_mode;
        open.progs.call_entry.set_autoload(needs_entry);
        open.progs.call_return.set_autoload(needs_return);
        open.progs.tracing_mode.set_autoload(tracing_mode);
        let skel = open
            .load()
            .map_err(|e| Error::bpf("loading the BPF programs", e))?;

        // Returns first: a return with no entry on its thread's stack is harmless, while an
        // entry seen before returns are live would leave a frame that is never popped.
        let mut links = Vec::new();
        if needs_return {
            links.push(attach::usdt(
                &skel.progs.call_return,
                target,
                "function__return",
            )?);
        }
        if needs_entry {
            links.push(attach::usdt(
                &skel.progs.call_entry,
                target,
                "function__entry",
            )?);
        }
        if tracing_mode {
            links.push(attach::hold_line_semaphore(
                &skel.progs.tracing_mode,
                target,
            )?);
        }
        Ok(CallCounter {
            skel,
            _links: links,
            latency: opts.latency,
            strategy,
        })
    }

    /// Reads every function's statistics (matched ones only) and the loss counters.
    pub fn read(&self) -> Result<CallReport> {
        let mut functions = Vec::new();
        let map = &self.skel.maps.functions;
        for key in map.keys() {
            let Some(value) = map
                .lookup(&key, MapFlags::ANY)
                .map_err(|e| Error::bpf("reading the function table", e))?
            else {
                continue;
            };
            let e: FnEntry = record(&value);
            if e.matched == 0 {
                continue;
            }
            functions.push(FunctionStats {
                id: e.id,
                file: c_string(&e.file),
                // Signed: where the line comes from the probe (no code object), CPython may pass -1.
                line: e.firstlineno as i32,
                name: c_string(&e.name),
                name_truncated: e.name_truncated != 0,
                file_truncated: e.file_truncated != 0,
                count: e.stats.count,
                timed: e.stats.timed,
                total_ns: e.stats.total_ns,
                max_ns: e.stats.max_ns,
                histogram: Histogram::default(),
            });
        }
        self.add_slot_stats(&mut functions)?;
        functions.retain(|f| f.count > 0);
        if self.latency {
            let mut by_id: HashMap<u32, usize> = HashMap::new();
            for (i, f) in functions.iter().enumerate() {
                by_id.insert(f.id, i);
            }
            let hist = &self.skel.maps.latency_hist;
            for key in hist.keys() {
                let k: HistKey = record(&key);
                let Some(&i) = by_id.get(&k.fn_id) else {
                    continue;
                };
                if let Ok(Some(v)) = hist.lookup(&key, MapFlags::ANY) {
                    functions[i]
                        .histogram
                        .add(k.bucket, u64::from_le_bytes(v[..8].try_into().unwrap()));
                }
            }
        }
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref()
            .expect("calls.bpf.c has bss");
        Ok(CallReport {
            functions,
            losses: Losses::from_bpf(&bss.losses, self.skel.maps.functions.max_entries()),
            latency: self.latency,
        })
    }
}

impl CallCounter<'_> {
    /// Adds what the direct-mapped slots counted (bpf/calls.bpf.c) to each function's totals.
    fn add_slot_stats(&self, functions: &mut [FunctionStats]) -> Result<()> {
        let by_id: HashMap<u32, usize> = functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id, i))
            .collect();
        let slots = &self.skel.maps.fn_slots;
        for idx in 0..FN_SLOTS {
            let Some(value) = slots
                .lookup(&idx.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| Error::bpf("reading the function slots", e))?
            else {
                continue;
            };
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
        Ok(())
    }
}

/// Slots of the direct-mapped cache (bpf/pyprobe.h FN_SLOTS).
const FN_SLOTS: u32 = 4096;

/// A NUL-terminated C char array as text (names may be UTF-8, possibly cut mid-character).
pub fn c_string(bytes: &[i8]) -> String {
    let b: Vec<u8> = bytes
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}
