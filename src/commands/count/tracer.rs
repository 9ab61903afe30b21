//! pycount's kernel side from userspace: loads bpf/count.bpf.c for one target, attaches it
//! through the target's function source, and reads per-function statistics out of its maps.
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::time::Duration;

use libbpf_rs::MapCore;

use super::{CallReport, CountOptions};
use crate::abi::limits::MAX_DEPTH;
use crate::abi::skel::count::{CountSkel, CountSkelBuilder, OpenCountSkel};
use crate::abi::types::{FnEntry, FnKey, FnSlot, HistKey};
use crate::abi::{loss_counters, record, same_struct};
use crate::commands::tools;
use crate::error::{Error, Result};
use crate::kernel::overhead;
use crate::kernel::{Loaded, Probes, entries, globals, inherit, load, size};
use crate::output::Never;
use crate::session::Tracer;
use crate::session::probes_in_field;
use crate::source::SourceChoice;
use crate::source::breakpoints::{self, ArmError, Choice, Verdict, Watch as Breakpoints};
use crate::source::watch::{self, Watch};
use crate::source::{FunctionPrograms, FunctionSource, Plan, function_programs};
use crate::target::Target;
use crate::trace::calls::FunctionStats;
use crate::trace::filter::{self, Pattern};
use crate::trace::function::Function;
use crate::trace::histogram::Histogram;
use crate::trace::losses::{Loss, Losses, of_call_pairing};

/// Loaded and attached call counting for one target.
pub struct CountTracer {
    skel: Loaded<CountSkel<'static>>,
    probes: Probes,
    latency: bool,
    per_process: bool,
    /// The function source (None: watchpoints alone, `--source watch`).
    pub source: Option<FunctionSource>,
    /// Calls the source cannot see on this target, said in every report.
    hidden: Option<&'static str>,
    filters: Vec<Pattern>,
    /// Hardware breakpoints on the filtered functions, where they serve.
    breakpoints: Option<Box<Breakpoints>>,
    /// Why the shared probe counts where breakpoints could have been asked for.
    why_probe: Option<String>,
    /// `--source watch`: hardware watchpoints count the filtered functions.
    watch: Option<Box<Watch>>,
}

probes_in_field!(CountTracer);

/// The function, latency and stack maps allocated as they fill, not up front (the agent's
/// many processes; the watchpoint source, which leaves them unused).
fn lean_maps(open: &mut OpenCountSkel<'_>) -> Result<()> {
    for m in [
        &mut open.maps.functions,
        &mut open.maps.latency_hist,
        &mut open.maps.stacks,
    ] {
        m.set_map_flags(libbpf_rs::libbpf_sys::BPF_F_NO_PREALLOC)
            .map_err(|e| Error::bpf("sizing the maps", e))?;
    }
    Ok(())
}

/// count.bpf.c with only the watchpoint program (`wp_hit`), its unused maps left unallocated.
fn load_watch() -> Result<Loaded<CountSkel<'static>>> {
    load(CountSkelBuilder::default(), |open| {
        let p = &mut open.progs;
        for prog in [
            &mut p.call_entry,
            &mut p.call_return,
            &mut p.tracing_mode,
            &mut p.eval_entry,
            &mut p.eval_return,
            &mut p.init_entry,
            &mut p.bp_entry,
            &mut p.bp_return,
        ] {
            prog.set_autoload(false);
        }
        lean_maps(open)
    })
}

/// The breakpoint source's two programs in count's skeleton.
fn bp_programs<'a, 'obj>(skel: &'a CountSkel<'obj>) -> breakpoints::Programs<'a, 'obj> {
    breakpoints::Programs {
        entry: &skel.progs.bp_entry,
        ret: &skel.progs.bp_return,
    }
}

/// Whether the shared probe and breakpoints count together (bpf/count.bpf.c: a call both see
/// is the breakpoint's).
fn set_handover(skel: &mut Loaded<CountSkel<'static>>) {
    if let Some(bss) = skel.maps.bss_data.as_deref_mut() {
        bss.bp_handover = true;
    }
}

impl CountTracer {
    /// The program's globals (losses, filter hits).
    fn bss(&self) -> &crate::abi::skel::count::types::bss {
        globals(self.skel.maps.bss_data.as_deref())
    }

    pub fn attach(target: &Target, opts: &CountOptions) -> Result<CountTracer> {
        if opts.source == SourceChoice::Watch {
            let w = Watch::open(target, &opts.filters)?;
            if let Some(e) = w.too_many_error() {
                return Err(e);
            }
            return Self::attach_watch(target, opts, w);
        }
        let shared = tools::require_functions(target, opts.latency);
        let mut why_not_watch = None;
        // Watchpoints count every thread's calls: one thread (--tid) is the kernel filter's.
        if opts.source == SourceChoice::Auto
            && opts.tid.is_none()
            && watch::refuse(&opts.filters, opts.latency, opts.subprocesses).is_none()
        {
            match Self::auto_watch(target, opts, shared.is_ok()) {
                Ok(Some(tracer)) => return Ok(tracer),
                Ok(None) => {}
                Err(e @ Error::Stopped) => return Err(e),
                // No other source: the watch's own refusal says most.
                Err(e) if shared.is_err() => return Err(e),
                Err(e) => why_not_watch = Some(e),
            }
        }
        let (source, plan) = shared?;
        filter::require_qualnames(&opts.filters, source.qualnames().err())?;
        tools::check_file_names(target, &source.usdt_probes(plan), opts.force)?;
        let choice =
            match breakpoints::choose(target, &source, &opts.filters, opts.latency, opts.source) {
                // A breakpoint is set in one process's threads; inherited probes follow forks.
                Choice::Breakpoints(_) if opts.subprocesses => Choice::Probe(Some(
                    "hardware breakpoints do not follow forked processes (--subprocesses)".into(),
                )),
                choice => choice,
            };
        match choice {
            Choice::Breakpoints(watch) => {
                match Self::load(target, opts, source.clone(), plan, Some(watch), None)? {
                    Ok(tracer) => Ok(tracer),
                    Err(why) => {
                        eprintln!(
                            "pyprobe: no hardware breakpoints: {why}; counting on the shared probe"
                        );
                        Self::load(target, opts, source, plan, None, Some(why))?
                            .map_err(Error::ProbeUnavailable)
                    }
                }
            }
            Choice::Probe(why) => {
                // Where the watchpoints were tried and could not serve, that is the reason.
                let why = why_not_watch
                    .map(|e| {
                        e.one_line()
                            .trim_start_matches("--source watch: ")
                            .to_string()
                    })
                    .or(why);
                Self::load(target, opts, source, plan, None, why)?.map_err(Error::ProbeUnavailable)
            }
        }
    }

    /// `--source auto` with a `--filter`: watchpoints from the start (no trial on the shared
    /// probe), where they can count every call asked for: every pattern resolved to at most
    /// four countable functions (a glob matching some), or an exact name not defined yet
    /// (searched again each second). None: a command not started yet where another source
    /// sees it from its first instruction. An error: why they cannot serve.
    fn auto_watch(
        target: &Target,
        opts: &CountOptions,
        shared: bool,
    ) -> Result<Option<CountTracer>> {
        // A layout pyprobe does not know: the other sources' own words.
        let Ok(w) = Watch::open(target, &opts.filters) else {
            return Ok(None);
        };
        if !w.started() && shared {
            return Ok(None);
        }
        if let Some(n) = w.too_many() {
            return Err(Error::ProbeUnavailable(format!(
                "{n} functions match, more than {} watchpoints can watch",
                crate::source::breakpoints::REGISTERS
            )));
        }
        if w.glob_unresolved() && shared {
            return Err(Error::ProbeUnavailable(
                "a --filter glob matches no function yet (it may match any number)".into(),
            ));
        }
        if let Some(note) = w.notes().first()
            && shared
        {
            return Err(Error::ProbeUnavailable(note.clone()));
        }
        Self::attach_watch(target, opts, w).map(Some)
    }

    /// Loads and attaches on the shared probe, or with `watch` on breakpoints (the inner error
    /// then says why they could not be set).
    fn load(
        target: &Target,
        opts: &CountOptions,
        source: FunctionSource,
        plan: Plan,
        mut watch: Option<Box<Breakpoints>>,
        why_probe: Option<String>,
    ) -> Result<std::result::Result<CountTracer, String>> {
        let mut skel = load(CountSkelBuilder::default(), |open| {
            let ro = globals(open.maps.rodata_data.as_deref_mut());
            ro.source = same_struct(&source.to_bpf());
            let (filters, nr_filters) = filter::table(&opts.filters);
            ro.filters = same_struct(&filters);
            ro.nr_filters = nr_filters;
            ro.timed = opts.latency;
            ro.only_tid = opts.tid.unwrap_or(0);
            ro.per_process = opts.subprocesses;
            if opts.subprocesses {
                ro.family_stack = crate::session::children::stack_top(target.pid)?;
            }
            size(
                &mut open.maps.functions,
                opts.max_functions,
                "function table",
            )?;
            if opts.lean_maps {
                lean_maps(open)?;
                // Threads beyond the few direct-mapped stacks take the hash map.
                size(&mut open.maps.stack_slots, 32, "thread stacks")?;
            }
            plan.autoload(FunctionPrograms {
                init: Some(&mut open.progs.init_entry),
                ..function_programs!(&mut open.progs)
            });
            if let Some(w) = &watch {
                // Breakpoints take the returns, and the entries unless the shared probe hands
                // functions over to them.
                open.progs
                    .eval_entry
                    .set_autoload(plan.eval_frame && w.handover);
                open.progs.eval_return.set_autoload(false);
            }
            if opts.subprocesses {
                inherit::for_perf_events(&mut open.progs.call_entry);
                inherit::for_perf_events(&mut open.progs.call_return);
            }
            open.progs.bp_entry.set_autoload(watch.is_some());
            open.progs
                .bp_return
                .set_autoload(watch.is_some() && opts.latency);
            Ok(())
        })?;
        let mut probes = skel.probes()?;
        if opts.subprocesses {
            probes.inherit_into_children();
        }
        let programs = FunctionPrograms {
            init: Some(&skel.progs.init_entry),
            ..function_programs!(&skel.progs)
        };
        match &mut watch {
            None => source.attach(plan, &mut probes, target, programs)?,
            Some(w) => {
                // Breakpoints need the trampoline, which only the eval-frame source has.
                let (entry, init) = source
                    .eval_offsets()
                    .expect("breakpoints need the eval-frame source");
                let what = "_PyEval_EvalFrameDefault";
                if w.handover {
                    set_handover(&mut skel);
                    probes.uprobe(&skel.progs.eval_entry, target, entry, what)?;
                }
                if let (true, Some(offset)) = (plan.init, init) {
                    probes.uprobe(
                        &skel.progs.init_entry,
                        target,
                        offset,
                        "3.13's instantiation call",
                    )?;
                }
                let progs = bp_programs(&skel);
                // On trial, the breakpoints wait for its verdict (`poll`).
                let armed = if w.on_trial() {
                    Ok(())
                } else {
                    w.arm(&mut probes, &progs)
                };
                match armed {
                    Ok(()) => {}
                    Err(ArmError::NoRegister(why)) => return Ok(Err(why)),
                    Err(ArmError::Other(e)) => return Err(e),
                }
            }
        }
        Ok(Ok(CountTracer {
            skel,
            probes,
            latency: opts.latency,
            per_process: opts.subprocesses,
            hidden: source.hidden(plan),
            source: Some(source),
            filters: opts.filters.clone(),
            breakpoints: watch,
            why_probe,
            watch: None,
        }))
    }

    /// `--source watch`: learns which accesses are calls on this interpreter file (on a
    /// skeleton of its own, so that the calibration's hits stay apart), then watches the
    /// filtered functions in every thread of the target.
    fn attach_watch(target: &Target, opts: &CountOptions, mut w: Watch) -> Result<CountTracer> {
        if let Some(why) = watch::refuse(&opts.filters, opts.latency, opts.subprocesses) {
            return Err(Error::ProbeUnavailable(why));
        }
        let rule = {
            let skel = load_watch()?;
            let mut probes = skel.probes()?;
            probes.arm()?;
            let hits = || {
                entries(&skel.maps.wp_hits)
                    .map_err(|e| Error::bpf("reading the watchpoints' hits", e))
            };
            let rule = watch::calibrate(target, w.layout(), &mut probes, &skel.progs.wp_hit, &hits);
            probes.detach();
            rule?
        };
        w.set_rule(rule);
        let skel = load_watch()?;
        let mut probes = skel.probes()?;
        w.arm(&mut probes, &skel.progs.wp_hit)?;
        Ok(CountTracer {
            skel,
            probes,
            latency: false,
            per_process: false,
            source: None,
            hidden: None,
            filters: opts.filters.clone(),
            breakpoints: None,
            why_probe: None,
            watch: Some(Box::new(w)),
        })
    }

    /// What the banner says of where the calls come from, beyond the source's own note.
    pub fn source_note(&self) -> Option<String> {
        if let Some(w) = &self.watch {
            return Some(w.banner());
        }
        match (&self.breakpoints, &self.why_probe) {
            (Some(w), _) => Some(w.banner()),
            (None, Some(why)) => Some(format!("the shared probe: {why}")),
            (None, None) => None,
        }
    }

    /// Every matched function's statistics: its table entry's plus its direct-mapped slot's.
    fn functions(&mut self) -> Result<Vec<FunctionStats>> {
        let mut functions = Vec::new();
        // In batches: a process's table is read every second by the agent.
        let batch = |e| Error::bpf("reading the function table", e);
        if let Some(w) = &mut self.watch {
            let hits = entries(&self.skel.maps.wp_hits)
                .map_err(|e| Error::bpf("reading the watchpoints' hits", e))?;
            return Ok(w.stats(hits));
        }
        for (key, value) in entries(&self.skel.maps.functions).map_err(batch)? {
            let e: FnEntry = record(&value);
            if e.matched == 0 {
                continue;
            }
            let key: FnKey = record(&key);
            functions.push(FunctionStats {
                function: Function::from_entry(&e),
                pid: self.per_process.then_some(key.pid),
                count: e.stats.count,
                timed: e.stats.timed,
                total_ns: e.stats.total_ns,
                own_ns: e.stats.own_ns,
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
                f.own_ns += slot.stats.own_ns;
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

    fn follows_children(&self) -> bool {
        self.per_process
    }

    /// Waits; meanwhile breakpoints follow the functions that run for the first time, and the
    /// shared probe goes once each pattern has one.
    fn poll(&mut self, timeout: Duration, _events: &mut Vec<Never>) -> Result<()> {
        std::thread::sleep(timeout);
        if let Some(w) = &mut self.watch {
            w.poll(&mut self.probes, &self.skel.progs.wp_hit);
            return Ok(());
        }
        if self.breakpoints.as_ref().is_some_and(|w| w.on_trial()) {
            self.judge()?;
            return Ok(());
        }
        if let Some(w) = &mut self.breakpoints
            && w.poll(&mut self.probes, &bp_programs(&self.skel))
        {
            // The breakpoints keep marking their calls: the uprobe may still run a while for
            // calls in flight once its link is gone.
            self.probes.detach_program(&self.skel.progs.eval_entry);
        }
        Ok(())
    }

    fn read(&mut self) -> Result<CallReport> {
        self.read_report()
    }

    fn unmatched_filters(&mut self, so_far: Option<Duration>) -> Vec<String> {
        // The kernel's filter never runs under watchpoints: a pattern matched when a function
        // it watches for has been called.
        if self.watch.is_some() {
            let counted = self.functions().unwrap_or_default();
            let hits = self.watch.as_ref().map_or(0, |w| w.pattern_hits(&counted));
            return filter::unmatched(&self.filters, hits, so_far);
        }
        let bss = self.bss();
        filter::unmatched(&self.filters, bss.filter_hits, so_far)
    }
}

impl CountTracer {
    /// `--source auto`: once the trial has its verdict, the breakpoints take the filtered
    /// functions over from the shared probe (as for a function first called after attach:
    /// a call both see is the breakpoint's), or they are never set.
    fn judge(&mut self) -> Result<()> {
        // The whole function table is read only when the trial looks: first, and at its end.
        if !self.breakpoints.as_ref().is_some_and(|w| w.trial_due()) {
            return Ok(());
        }
        let runs = overhead::runs(self.skel.progs.eval_entry.as_fd());
        let matched: u64 = self.functions()?.iter().map(|f| f.count).sum();
        let Some(w) = &mut self.breakpoints else {
            return Ok(());
        };
        match w.judge(runs, matched) {
            Verdict::Wait => {}
            Verdict::Probe(why) => {
                eprintln!("pyprobe: counting on the shared probe: {why}");
                self.why_probe = Some(why);
                // Nothing marks calls any more: the shared probe counts every one.
                self.breakpoints = None;
            }
            Verdict::Breakpoints(why) => {
                eprintln!("pyprobe: counting on hardware breakpoints: {why}");
                if w.take_over(&mut self.probes, &bp_programs(&self.skel)) {
                    self.probes.detach_program(&self.skel.progs.eval_entry);
                }
            }
        }
        Ok(())
    }

    fn read_report(&mut self) -> Result<CallReport> {
        let functions = self.functions()?;
        let bss = self.bss();
        let table = Some(self.skel.maps.functions.max_entries().into());
        let own = [(Loss::FunctionsFull, table), (Loss::HistFull, None)];
        let losses = Losses::read(
            &loss_counters(&bss.losses),
            &[&own[..], &of_call_pairing(MAX_DEPTH)].concat(),
        );
        Ok(CallReport {
            functions,
            losses,
            latency: self.latency,
            per_process: self.per_process,
            notes: self
                .hidden
                .iter()
                .map(|h| h.to_string())
                .chain(
                    self.breakpoints
                        .iter()
                        .flat_map(|w| w.notes().iter().cloned()),
                )
                .chain(self.watch.iter().flat_map(|w| w.notes().iter().cloned()))
                .collect(),
        })
    }
}
