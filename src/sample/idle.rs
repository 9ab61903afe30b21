//! `--idle`: samples of the threads that are off CPU, taken from userspace at the sampling rate.
//!
//! A CPU-clock perf event only ever interrupts a thread that runs, so a thread sleeping in
//! `Event.wait()` or blocked on a socket never shows in the kernel's samples. Each tick here reads,
//! from the target's memory (src/cpython/pystate, as `pyprobe stacks` does), the stack of every
//! thread that is not running (not `R` in /proc), and counts it under the same stack ids as the
//! kernel would (the same hash of the same frames). Why not in the kernel: a `sched_switch` hook
//! sees a thread leave the CPU, but never a thread that went to sleep before the session began,
//! which is exactly the thread parked for minutes that --idle is asked for; a BPF task iterator
//! could walk every thread, but only through sleepable `bpf_copy_from_user_task` reads of a second
//! copy of the walk, triggered from userspace at each tick all the same. A sleeping thread's stack
//! does not move while it sleeps, so reading it from outside is consistent, and its cost (a few
//! reads per frame, per sleeping thread, per tick) is pyprobe's, not the target's: nothing is
//! stopped.
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::Stack;
use crate::abi::limits::MAX_STACK_DEPTH;
use crate::cpython::pystate::{Interpreter, RawFrame};
use crate::cpython::walk::{self, symbolize};

pub struct IdleSampler {
    pid: i32,
    period: Duration,
    next: Instant,
    /// Kernel thread id of each thread state, as last learnt.
    tids: HashMap<u64, i32>,
    learnt: Option<Instant>,
    counts: HashMap<(u32, u64), u64>,
    samples: u64,
    /// Samples of stacks deeper than the kernel keeps, and of stacks read only in part: the
    /// kernel counts its own (`loss_counters`), these are added to them.
    truncated: u64,
    read_errors: u64,
    /// When sampling began, and the passes taken since: passes due but not taken (a pass over
    /// thousands of threads outlasting the period) are counted, not made up.
    started: Instant,
    passes: u64,
}

/// How often unknown thread states may trigger a new look at the threads' ids (before 3.11 it
/// stops the process for a moment).
const RELEARN: Duration = Duration::from_secs(1);

impl IdleSampler {
    pub fn new(pid: i32, rate_hz: u32) -> IdleSampler {
        let period = Duration::from_secs_f64(1.0 / f64::from(rate_hz.max(1)));
        IdleSampler {
            pid,
            period,
            next: Instant::now() + period,
            tids: HashMap::new(),
            learnt: None,
            counts: HashMap::new(),
            samples: 0,
            truncated: 0,
            read_errors: 0,
            started: Instant::now(),
            passes: 0,
        }
    }

    pub fn next_tick(&self) -> Instant {
        self.next
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples of stacks cut at `MAX_STACK_DEPTH`, and of stacks whose walk broke off.
    pub fn losses(&self) -> (u64, u64) {
        (self.truncated, self.read_errors)
    }

    /// Passes due since sampling began, and those of them not taken (a pass that took longer
    /// than the period); a pass late by less than one period is not counted as missed.
    pub fn passes_missed(&self) -> (u64, u64) {
        let due = (self.started.elapsed().as_secs_f64() / self.period.as_secs_f64()) as u64;
        (due, due.saturating_sub(self.passes + 1))
    }

    pub fn counts(&self) -> impl Iterator<Item = ((u32, u64), u64)> + '_ {
        self.counts.iter().map(|(&k, &v)| (k, v))
    }

    fn learn_tids(&mut self, interp: &Interpreter) {
        if self.learnt.is_some_and(|t| t.elapsed() < RELEARN) {
            return;
        }
        self.learnt = Some(Instant::now());
        if let Ok((threads, _)) = walk::take(interp) {
            for t in threads.threads {
                if let Some(tid) = t.tid {
                    self.tids.insert(t.state.addr, tid);
                }
            }
        }
    }

    /// One tick: every thread off CPU now, counted under its stack.
    pub fn tick(&mut self, interp: &mut Interpreter, named: &mut HashMap<u64, Rc<Stack>>) {
        // Ticks missed while pyprobe was busy are not made up: each tick is one sample.
        self.next = (self.next + self.period).max(Instant::now());
        self.passes += 1;
        let Ok(threads) = interp.threads().map(|l| l.threads) else {
            return;
        };
        if threads.iter().any(|t| !self.tids.contains_key(&t.addr)) {
            self.learn_tids(interp);
        }
        for t in threads {
            let Some(&tid) = self.tids.get(&t.addr) else {
                continue;
            };
            if walk::thread_status(self.pid, tid).1 {
                continue;
            }
            let Ok(walk) = interp.innermost_frames(&t, MAX_STACK_DEPTH) else {
                continue;
            };
            // As the kernel's walk: the innermost frames read are kept, what was cut counted.
            let frames = walk.frames;
            let truncated = walk.not_shown > 0;
            if frames.is_empty() {
                continue;
            }
            self.truncated += u64::from(truncated);
            self.read_errors += u64::from(walk.error.is_some());
            let id = stack_id(&frames, truncated);
            named.entry(id).or_insert_with(|| {
                Rc::new(Stack {
                    id,
                    frames: symbolize(interp, &frames, false),
                    truncated,
                })
            });
            *self.counts.entry((tid as u32, id)).or_insert(0) += 1;
            self.samples += 1;
        }
    }
}

fn mix(h: u64, v: u64) -> u64 {
    let h = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// The id bpf/sample.bpf.c gives the same frames (`walk_stack`): one stack, one id, however
/// it was sampled.
pub fn stack_id(frames: &[RawFrame], truncated: bool) -> u64 {
    let mut h = 0x5350;
    for f in frames {
        h = mix(mix(h, f.code), f.instr);
    }
    h = mix(h, frames.len() as u64 | u64::from(truncated) << 32);
    if h == 0 { 1 } else { h }
}
