//! The sampler's kernel side from userspace: loads bpf/sample.bpf.c for one target, attaches it
//! to a CPU-clock perf event per CPU, names each new stack once as the kernel announces it, and
//! reads the (thread, stack) counts.
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, MapFlags};

use super::idle::IdleSampler;
use super::tasks::AsyncTasks;
use super::{Profile, SampleOptions, Stack, StackCount};
use crate::abi::limits::MAX_STACK_DEPTH;
use crate::abi::skel::sample::{SampleSkel, SampleSkelBuilder, types::bss as Bss};
use crate::abi::types::{SampleKey, StackRecord};
use crate::abi::{loss_counters, record, same_struct};
use crate::cpython::pystate::{Interpreter, RawFrame};
use crate::cpython::walk::symbolize;
use crate::error::{Error, Result};
use crate::kernel::{Loaded, Probes, Ring, globals, load, size};
use crate::output::Never;
use crate::session::Tracer;
use crate::session::probes_in_field;
use crate::target::Target;
use crate::trace::filter::unqualified;
use crate::trace::losses::{Loss, Losses};

pub struct SampleTracer {
    skel: Loaded<SampleSkel<'static>>,
    probes: Probes,
    ring: Ring<StackRecord>,
    interp: Interpreter,
    /// Every stack named so far, by id.
    stacks: HashMap<u64, Rc<Stack>>,
    threads: HashMap<u32, Rc<str>>,
    /// threading's names by kernel thread id, as last read, and when.
    python_names: HashMap<u32, String>,
    python_names_read: Option<Instant>,
    opts: SampleOptions,
    attached_at: Instant,
    idle: Option<IdleSampler>,
    /// --async: the tasks read so far, and each stack's frames up to its outermost coroutine.
    tasks: Option<AsyncTasks>,
    coro_depths: HashMap<u64, usize>,
}

probes_in_field!(SampleTracer);

impl SampleTracer {
    pub fn attach(target: &Target, opts: &SampleOptions) -> Result<SampleTracer> {
        let interp = Interpreter::open(target)?;
        let layout = interp.layout.to_bpf(interp.runtime);
        let (tasks, coro_iframe) = match opts.async_tasks {
            true => {
                let (t, iframe) = AsyncTasks::new(target)?;
                (Some(t), iframe)
            }
            false => (None, 0),
        };
        let skel = load(SampleSkelBuilder::default(), |open| {
            let ro = globals(open.maps.rodata_data.as_deref_mut());
            ro.target_tgid = target.pid as u32;
            ro.only_tid = opts.tid.unwrap_or(0);
            ro.layout = same_struct(&layout);
            ro.coro_iframe = coro_iframe;
            if !opts.async_tasks {
                size(&mut open.maps.coros, 1, "coroutine table")?;
            }
            if opts.max_stacks > 0 {
                size(&mut open.maps.counts, opts.max_stacks, "stack table")?;
            }
            Ok(())
        })?;
        let mut probes = skel.probes()?;
        probes.cpu_clock(&skel.progs.sample, opts.rate_hz)?;
        let ring = Ring::open(&skel.maps.new_stacks)?;
        let idle = opts
            .idle
            .then(|| IdleSampler::new(target.pid, opts.rate_hz));
        Ok(SampleTracer {
            skel,
            probes,
            ring,
            interp,
            stacks: HashMap::new(),
            threads: HashMap::new(),
            python_names: HashMap::new(),
            python_names_read: None,
            opts: opts.clone(),
            attached_at: Instant::now(),
            idle,
            tasks,
            coro_depths: HashMap::new(),
        })
    }

    /// Samples the kernel took so far.
    pub fn samples(&self) -> u64 {
        let bss = self.bss();
        // SAFETY: a u64 the kernel updates under us, read afresh.
        let on_cpu = unsafe { std::ptr::read_volatile(&bss.samples) };
        on_cpu + self.idle.as_ref().map_or(0, |i| i.samples())
    }

    /// Samples taken but not counted so far (the stack table was full).
    pub fn lost(&self) -> u64 {
        loss_counters(&self.bss().losses).samples_full
    }

    /// The program's globals, updated by the kernel under us.
    fn bss(&self) -> &Bss {
        globals(self.skel.maps.bss_data.as_deref())
    }

    /// --async: reads the tasks when due (`force`: now).
    fn refresh_tasks(&mut self, force: bool) {
        // SAFETY: a u32 the kernel updates under us, read afresh.
        let generation = unsafe { std::ptr::read_volatile(&self.bss().coro_gen) };
        let Some(t) = &mut self.tasks else { return };
        t.refresh(&mut self.interp, &self.skel.maps.coros, generation, force);
    }

    /// --async: how often the tasks were read, and how long that took in all.
    pub fn task_reads(&self) -> Option<(u64, Duration)> {
        self.tasks.as_ref().map(|t| (t.reads, t.read_time))
    }

    /// Names the stacks the kernel announced since the last call.
    fn name_new_stacks(&mut self, announced: Vec<StackRecord>) {
        for r in announced {
            if self.stacks.contains_key(&r.id) {
                continue;
            }
            let depth = (r.depth as usize).min(MAX_STACK_DEPTH);
            let raw: Vec<RawFrame> = r.frames[..depth]
                .iter()
                .map(|f| RawFrame {
                    addr: 0,
                    code: f.code,
                    instr: f.instr,
                })
                .collect();
            if self.tasks.is_some() && r.coro_depth > 0 {
                self.coro_depths
                    .insert(r.id, (r.coro_depth as usize).min(depth));
            }
            let stack = Stack {
                id: r.id,
                frames: symbolize(&mut self.interp, &raw, false),
                truncated: r.truncated != 0,
            };
            self.stacks.insert(r.id, Rc::new(stack));
        }
    }

    /// A thread's name, read once: the one `threading` gives it (`Thread.name`), else the
    /// OS's. threading's names are read from memory when a thread is first seen, at most once
    /// a second (a process of 2000 threads is not read 2000 times).
    fn thread_name(&mut self, tid: u32) -> Rc<str> {
        if let Some(n) = self.threads.get(&tid) {
            return n.clone();
        }
        let pid = self.interp.pid;
        if !self.python_names.contains_key(&tid)
            && self
                .python_names_read
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.python_names_read = Some(Instant::now());
            let by_ns = crate::cpython::walk::host_tids(pid);
            self.python_names = self
                .interp
                .thread_names()
                .unwrap_or_default()
                .into_values()
                .filter_map(|t| {
                    let n = t.native_id?;
                    let host = by_ns.get(&n).copied().unwrap_or(n as i32);
                    Some((host as u32, t.name))
                })
                .collect();
        }
        let name: Rc<str> = match self.python_names.get(&tid) {
            Some(n) => n.as_str().into(),
            None => std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .map(|s| s.trim_end().to_string())
                .unwrap_or_default()
                .into(),
        };
        self.threads.insert(tid, name.clone());
        name
    }
}

impl Tracer for SampleTracer {
    type Event = Never;
    type Report = Profile;

    fn poll(&mut self, timeout: Duration, _: &mut Vec<Never>) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            let wait = match &self.idle {
                Some(i) => i.next_tick().saturating_duration_since(now),
                None => end.saturating_duration_since(now),
            }
            .min(end.saturating_duration_since(now));
            let announced = self.ring.poll(wait)?;
            self.name_new_stacks(announced);
            self.refresh_tasks(false);
            if let Some(i) = &mut self.idle
                && Instant::now() >= i.next_tick()
            {
                i.tick(&mut self.interp, &mut self.stacks);
            }
            if Instant::now() >= end {
                return Ok(());
            }
        }
    }

    fn read(&mut self) -> Result<Profile> {
        self.name_new_stacks(self.ring.take());
        self.refresh_tasks(true);
        let mut read = Vec::new();
        let map = &self.skel.maps.counts;
        for k in map.keys() {
            if let Some(v) = map
                .lookup(&k, MapFlags::ANY)
                .map_err(|e| Error::bpf("reading the sample counts", e))?
            {
                let key: SampleKey = record(&k);
                read.push((
                    key,
                    u64::from_ne_bytes(v[..8].try_into().expect("a u64 count")),
                ));
            }
        }
        // The kernel's on-CPU samples and --idle's off-CPU ones, one count per (thread, stack,
        // and with --async the outermost coroutine running).
        let mut merged: HashMap<(u32, u64, u64, u32), u64> = HashMap::new();
        let idle = self.idle.iter().flat_map(|i| i.counts());
        for (key, count) in read
            .into_iter()
            .map(|(k, c)| ((k.tid, k.stack_id, k.coro, k.coro_gen), c))
            .chain(idle.map(|((tid, id), c)| ((tid, id, 0, 0), c)))
        {
            *merged.entry(key).or_insert(0) += count;
        }
        let mut counts: Vec<StackCount> = Vec::new();
        // --async: the stacks of tasks of one name, and where each (thread, stack) is counted.
        let mut task_stacks: HashMap<u64, Rc<Stack>> = HashMap::new();
        let mut at: HashMap<(u32, u64), usize> = HashMap::new();
        let mut unnamed = 0;
        for ((tid, id, coro, generation), count) in merged {
            let mut stack = match id {
                0 => None,
                id => match self.stacks.get(&id) {
                    Some(s) => Some(s.clone()),
                    None => {
                        unnamed += count;
                        continue;
                    }
                },
            };
            if let (Some(t), Some(s)) = (&self.tasks, &stack)
                && let Some(depth) = self.coro_depths.get(&s.id)
                && let Some(ts) = t.task_stack(s, coro, generation, *depth)
            {
                stack = Some(
                    task_stacks
                        .entry(ts.id)
                        .or_insert_with(|| Rc::new(ts))
                        .clone(),
                );
            }
            let key = (tid, stack.as_ref().map_or(0, |s| s.id));
            if let Some(&i) = at.get(&key) {
                counts[i].count += count;
                continue;
            }
            at.insert(key, counts.len());
            counts.push(StackCount {
                tid,
                thread: self.thread_name(tid),
                stack,
                count,
            });
        }
        let opts = &self.opts;
        counts.retain(|c| match &c.stack {
            None => opts.all_threads && opts.filters.is_empty(),
            Some(s) => {
                opts.filters.is_empty()
                    || s.frames.first().is_some_and(|f| {
                        opts.filters
                            .iter()
                            .any(|p| p.matches(&f.file, unqualified(&f.name), &f.name))
                    })
            }
        });
        let bss = self.bss();
        let mut losses = Losses::read(
            &loss_counters(&bss.losses),
            &[
                (Loss::SamplesFull, Some(u64::from(opts.max_stacks))),
                (Loss::StacksTruncated, Some(MAX_STACK_DEPTH as u64)),
                (Loss::StackReadErrors, None),
            ],
        );
        // --idle's samples are taken in userspace: its cut stacks are counted there.
        if let Some(i) = &self.idle {
            let (truncated, read_errors) = i.losses();
            losses.add(Loss::StacksTruncated, truncated);
            losses.add(Loss::StackReadErrors, read_errors);
            let (due, missed) = i.passes_missed();
            losses.set_limited(Loss::IdlePassesMissed, missed, due);
        }
        Ok(Profile {
            counts,
            rate_hz: opts.rate_hz,
            elapsed: self.attached_at.elapsed(),
            losses,
            unnamed,
            idle: opts.idle,
            by_line: opts.lines,
        })
    }
}
