//! pycount's breakpoint source (bpf/breakpoints.bpf.h): where an exact `--filter` names a few
//! functions and CPython's perf trampoline is on, a hardware breakpoint per thread on each one's
//! trampoline stub sees its calls and nothing else, instead of the probe every call passes.
mod perf_map;

use std::time::{Duration, Instant};

use libbpf_rs::ProgramMut;

use perf_map::{PerfMap, Stub};

use crate::error::Error;
use crate::kernel::Probes;
use crate::kernel::overhead::measure_hit;
use crate::kernel::overhead::{breakpoint_ns, trap_ns};
use crate::kernel::perf;
use crate::source::SourceChoice;
use crate::source::{FunctionSource, Kind};
use crate::target::Target;
use crate::trace::filter::{Pattern, unqualified};

/// x86-64's debug registers: four per thread.
pub const REGISTERS: usize = 4;

/// How often the perf map is read for functions that run for the first time.
const POLL: Duration = Duration::from_millis(100);

/// How long `--source auto` counts on the shared probe before it decides.
const TRIAL: Duration = Duration::from_secs(1);

/// Which source carries a filtered pycount's calls.
pub enum Choice {
    /// The shared probe (every call passes it); why, where breakpoints could have been asked.
    Probe(Option<String>),
    Breakpoints(Box<Watch>),
}

/// The shared probe where breakpoints cannot serve; else a watch over the stubs the perf map
/// lists for the patterns (it may list none yet: the shared probe then counts those functions
/// until their stubs appear, `handover`).
pub fn choose(
    target: &Target,
    source: &FunctionSource,
    patterns: &[Pattern],
    latency: bool,
    mode: SourceChoice,
) -> Choice {
    if patterns.is_empty() || !serve(source) {
        return Choice::Probe(None);
    }
    let why = |s: &str| Choice::Probe(Some(s.to_string()));
    if mode == SourceChoice::Probe {
        return why("--source probe");
    }
    if patterns.iter().any(|p| p.prefix) {
        return why("a --filter glob can match any number of functions");
    }
    let mut watch = Watch {
        pid: target.pid,
        patterns: patterns.to_vec(),
        latency,
        map: PerfMap::of(target),
        stubs: Vec::new(),
        handover: false,
        trial: None,
        keep_probe: false,
        next_poll: Instant::now() + POLL,
        notes: Vec::new(),
    };
    for stub in watch.map.new_stubs() {
        if watch.wanted(&stub) {
            let ret = return_address(target.pid, &stub);
            watch.stubs.push(Watched {
                stub,
                ret,
                armed: false,
            });
        }
    }
    let per_stub = watch.registers_per_stub();
    if watch.stubs.len() * per_stub > REGISTERS {
        return Choice::Probe(Some(format!(
            "{} functions match, more than {} breakpoints can watch",
            watch.stubs.len(),
            REGISTERS / per_stub
        )));
    }
    let waiting = watch.unresolved();
    if latency {
        if let Some(p) = waiting.first() {
            return Choice::Probe(Some(format!(
                "--latency: {p} has not run yet (no trampoline stub to watch)"
            )));
        }
        if watch.stubs.iter().any(|w| w.ret.is_none()) {
            return why("--latency: a stub's call is not where CPython 3.12-3.14 put it");
        }
    }
    watch.handover = !waiting.is_empty();
    // --latency pairs each return with its entry on one source: no trial (a call entered on the
    // shared probe would return on a breakpoint).
    if mode == SourceChoice::Auto && !latency {
        watch.handover = true;
        watch.trial = Some(Trial::default());
    }
    Choice::Breakpoints(Box::new(watch))
}

/// Whether breakpoints can count on this source: calls run through the perf trampoline's
/// stubs (3.12-3.14 with it on).
pub fn serve(source: &FunctionSource) -> bool {
    matches!(&source.kind, Kind::EvalFrame(e) if e.trampoline.is_some())
}

/// `pyprobe probes`' words for the breakpoint source: what a hit costs here (measured now), or
/// why this machine gives none.
pub fn describe() -> std::result::Result<String, String> {
    match measure_hit() {
        Some(ns) => Ok(format!(
            "hardware breakpoints on the functions' trampoline stubs: ~{:.0} us per call of \
             them, nothing for other calls (up to {} functions with --latency)",
            ns / 1e3,
            REGISTERS / 2
        )),
        None => Err("this machine gives pyprobe no hardware breakpoint".into()),
    }
}

/// A stub watched (or to be): its function, where its call returns.
struct Watched {
    stub: Stub,
    ret: Option<u64>,
    armed: bool,
}

/// The breakpoints of one session and the perf map they follow.
pub struct Watch {
    pid: i32,
    patterns: Vec<Pattern>,
    latency: bool,
    map: PerfMap,
    stubs: Vec<Watched>,
    /// The shared probe still counts functions that have no stub yet.
    pub handover: bool,
    /// `--source auto`: the shared probe counts alone while the rates are measured.
    trial: Option<Trial>,
    /// Breakpoints could not all be set after the trial: the shared probe stays.
    keep_probe: bool,
    next_poll: Instant,
    notes: Vec<String>,
}

const NO_RUNS: &str = "the kernel does not count the shared probe's runs here (that takes \
                       CAP_SYS_ADMIN or kernel.bpf_stats_enabled=1): breakpoints, which cost \
                       nothing for the calls of other functions";

/// The first second of `--source auto`: all calls (the shared probe's runs) and the filtered
/// functions' calls, from the first look on.
#[derive(Default)]
struct Trial {
    start: Option<(Instant, u64, u64)>,
}

/// What the trial found: breakpoints, or the shared probe and why.
pub enum Verdict {
    /// Still measuring.
    Wait,
    Breakpoints(String),
    Probe(String),
}

/// Why a breakpoint could not be set.
pub enum ArmError {
    /// A thread's debug registers are taken (ENOSPC), by a debugger or another tool.
    NoRegister(String),
    Other(Error),
}

/// The bpf programs breakpoints run: a call's and (with --latency) a return's.
pub struct Programs<'a, 'obj> {
    pub entry: &'a ProgramMut<'obj>,
    pub ret: &'a ProgramMut<'obj>,
}

impl Watch {
    /// Whether the breakpoints wait for the trial's verdict.
    pub fn on_trial(&self) -> bool {
        self.trial.is_some()
    }

    /// Whether the trial looks now: its start, or its end (`judge` wants the counts then).
    pub fn trial_due(&self) -> bool {
        self.trial
            .as_ref()
            .is_some_and(|t| t.start.is_none_or(|(t0, ..)| t0.elapsed() >= TRIAL))
    }

    /// The trial, given the shared probe's runs and the filtered functions' calls so far
    /// (None where the kernel does not count runs): after a second, which source costs the
    /// target less at these rates.
    pub fn judge(&mut self, runs: Option<u64>, matched: u64) -> Verdict {
        let Some(trial) = &mut self.trial else {
            return Verdict::Wait;
        };
        let Some(runs) = runs else {
            self.trial = None;
            return Verdict::Breakpoints(NO_RUNS.into());
        };
        let Some((t0, runs0, matched0)) = trial.start else {
            trial.start = Some((Instant::now(), runs, matched));
            return Verdict::Wait;
        };
        let secs = t0.elapsed().as_secs_f64();
        if secs < TRIAL.as_secs_f64() {
            return Verdict::Wait;
        }
        self.trial = None;
        let all = runs.saturating_sub(runs0) as f64 / secs;
        let filtered = matched.saturating_sub(matched0) as f64 / secs;
        // Every filtered call passes the shared probe: none counted means no run counts.
        if all == 0.0 && filtered > 0.0 {
            return Verdict::Breakpoints(NO_RUNS.into());
        }
        let (bp, probe) = (filtered * breakpoint_ns(), all * trap_ns());
        let rates = format!(
            "the filtered functions ran {} of {} calls/s (breakpoints ~{:.1} ms/s of the \
             target's time, the shared probe ~{:.1} ms/s)",
            per_second(filtered),
            per_second(all),
            bp / 1e6,
            probe / 1e6
        );
        // An idle target: breakpoints, free for whatever else starts running.
        if bp <= probe {
            Verdict::Breakpoints(rates)
        } else {
            Verdict::Probe(rates)
        }
    }

    fn registers_per_stub(&self) -> usize {
        if self.latency { 2 } else { 1 }
    }

    fn wanted(&self, stub: &Stub) -> bool {
        let name = unqualified(&stub.qualname);
        self.patterns
            .iter()
            .any(|p| p.matches(&stub.file, name, &stub.qualname))
    }

    /// The patterns no stub has matched yet, as the user wrote them.
    fn unresolved(&self) -> Vec<String> {
        self.patterns
            .iter()
            .filter(|p| {
                !self.stubs.iter().any(|w| {
                    p.matches(
                        &w.stub.file,
                        unqualified(&w.stub.qualname),
                        &w.stub.qualname,
                    )
                })
            })
            .map(|p| match &p.file {
                Some(f) => format!("{f}:{}", p.name),
                None => p.name.clone(),
            })
            .collect()
    }

    /// Sets a breakpoint on every watched stub not yet armed, in every thread now: threads
    /// started later inherit it from the thread that starts them. Never twice for one stub:
    /// a thread that inherited a breakpoint and got its own would count each call twice.
    pub fn arm(
        &mut self,
        probes: &mut Probes,
        progs: &Programs<'_, '_>,
    ) -> std::result::Result<(), ArmError> {
        let latency = self.latency;
        for w in self.stubs.iter_mut().filter(|w| !w.armed) {
            w.armed = true;
            for tid in perf::threads(self.pid) {
                let mut sites = vec![(w.stub.addr, progs.entry)];
                if latency && let Some(ret) = w.ret {
                    sites.push((ret, progs.ret));
                }
                for (addr, prog) in sites {
                    match perf::open(tid, addr, true) {
                        Ok(fd) => probes.breakpoint(prog, fd).map_err(ArmError::Other)?,
                        // The thread ended meanwhile.
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                            return Err(ArmError::NoRegister(format!(
                                "thread {tid} of PID {} has no debug register free (a debugger \
                                     such as gdb may hold them)",
                                self.pid
                            )));
                        }
                        Err(e) => {
                            return Err(ArmError::Other(Error::bpf(
                                format!("setting a hardware breakpoint in thread {tid}"),
                                libbpf_rs::Error::from(e),
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Every 100 ms, the functions the perf map lists for the first time: those the patterns
    /// name get breakpoints. True when the last pattern got its first function, so that the
    /// shared probe can go.
    pub fn poll(&mut self, probes: &mut Probes, progs: &Programs<'_, '_>) -> bool {
        if Instant::now() < self.next_poll {
            return false;
        }
        self.next_poll = Instant::now() + POLL;
        let mut added = false;
        for stub in self.map.new_stubs() {
            if !self.wanted(&stub) || self.stubs.iter().any(|w| w.stub.addr == stub.addr) {
                continue;
            }
            let what = format!("{} ({})", stub.qualname, stub.file);
            if (self.stubs.len() + 1) * self.registers_per_stub() > REGISTERS {
                // Where the shared probe still runs, it stays and counts this function too.
                if !self.handover {
                    self.notes.push(format!(
                        "{what} ran first during the session and is not counted: the \
                         {REGISTERS} debug registers are all watching other functions"
                    ));
                }
                continue;
            }
            // Where the shared probe still runs, it counted this function's calls until now;
            // else those calls went unseen.
            if !self.handover {
                self.notes.push(format!(
                    "{what} ran first during the session: its calls before pyprobe set its \
                     breakpoint (up to 0.1 s later) are not counted"
                ));
            }
            let ret = return_address(self.pid, &stub);
            self.stubs.push(Watched {
                stub,
                ret,
                armed: false,
            });
            added = true;
        }
        if added && let Err(e) = self.arm(probes, progs) {
            self.notes.push(match e {
                ArmError::NoRegister(why) => format!("a breakpoint could not be set: {why}"),
                ArmError::Other(e) => e.one_line(),
            });
        }
        self.settle()
    }

    /// After the trial's verdict for breakpoints: sets them; true when the shared probe can go
    /// now (every pattern has its function; else it goes with the last one's first call).
    pub fn take_over(&mut self, probes: &mut Probes, progs: &Programs<'_, '_>) -> bool {
        if let Err(e) = self.arm(probes, progs) {
            // Threads that have their breakpoint mark its calls; the shared probe counts the
            // others'.
            self.keep_probe = true;
            self.notes.push(match e {
                ArmError::NoRegister(why) => {
                    format!("a breakpoint could not be set ({why}): the shared probe counted on")
                }
                ArmError::Other(e) => e.one_line(),
            });
        }
        self.settle()
    }

    /// Whether the shared probe has nothing left to count: then it goes.
    fn settle(&mut self) -> bool {
        if self.handover && !self.keep_probe && self.unresolved().is_empty() {
            self.handover = false;
            return true;
        }
        false
    }

    /// The banner's words for this source and its cost.
    pub fn banner(&self) -> String {
        if self.trial.is_some() {
            return "the shared probe for a second, measuring how often the filtered functions \
                    run; then hardware breakpoints if they cost less (--source)"
                .into();
        }
        let n = self.stubs.len();
        let mut s = format!(
            "hardware breakpoints on {n} function{}: ~{:.0} us per call of {}, nothing for other calls",
            if n == 1 { "" } else { "s" },
            breakpoint_ns() * self.registers_per_stub() as f64 / 1e3,
            if n == 1 { "it" } else { "them" },
        );
        let waiting = self.unresolved();
        if self.handover {
            s.push_str(&format!(
                "; the shared probe counts {} until its first call",
                waiting.join(", ")
            ));
        }
        s
    }

    /// What the report must say: functions that could not be counted whole.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// A rate for people: 12, 3.4k, 1.2M.
fn per_second(rate: f64) -> String {
    match rate {
        r if r >= 1e6 => format!("{:.1}M", r / 1e6),
        r if r >= 1e4 => format!("{:.0}k", r / 1e3),
        r if r >= 1e3 => format!("{:.1}k", r / 1e3),
        r => format!("{r:.0}"),
    }
}

/// Where a stub's call returns (Python/asm_trampoline.S on x86-64: an optional `endbr64`, a
/// stack adjustment, `call *%reg`): the instruction after the call.
fn return_address(pid: i32, stub: &Stub) -> Option<u64> {
    let code = crate::target::memory::read_vec(pid, stub.addr, stub.size.min(32) as usize).ok()?;
    call_end(&code).map(|end| stub.addr + end as u64)
}

fn call_end(code: &[u8]) -> Option<usize> {
    let mut at = 0;
    if code.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
        at += 4;
    }
    // 3.12-3.13: sub $8, %rsp; 3.14: push %rbp; mov %rsp, %rbp. Either way the call's own
    // stack pointer is 16 below the stub's entry (what bpf/count.bpf.c's handover relies on).
    let adjust = code.get(at..at + 4)?;
    if adjust != [0x48, 0x83, 0xec, 0x08] && adjust != [0x55, 0x48, 0x89, 0xe5] {
        return None;
    }
    at += 4;
    if code.get(at)? & 0xf0 == 0x40 {
        at += 1;
    }
    // ff /2 with a register operand: call *%reg.
    if *code.get(at)? != 0xff || code.get(at + 1)? & 0xf8 != 0xd0 {
        return None;
    }
    Some(at + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_at_a_glance() {
        assert_eq!(per_second(0.4), "0");
        assert_eq!(per_second(120.0), "120");
        assert_eq!(per_second(3_400.0), "3.4k");
        assert_eq!(per_second(56_700.0), "57k");
        assert_eq!(per_second(1_234_567.0), "1.2M");
    }

    #[test]
    fn a_stubs_call_ends_where_its_return_lands() {
        // pyenv 3.12.1: sub $8,%rsp; call *%rcx; add $8,%rsp; ret
        let plain = [
            0x48, 0x83, 0xec, 0x08, 0xff, 0xd1, 0x48, 0x83, 0xc4, 0x08, 0xc3,
        ];
        assert_eq!(call_end(&plain), Some(6));
        // With CET: endbr64 first; and a call through r8.
        let cet = [
            0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x83, 0xec, 0x08, 0x41, 0xff, 0xd0, 0x48,
        ];
        assert_eq!(call_end(&cet), Some(11));
        // Debian's 3.14: endbr64; push %rbp; mov %rsp,%rbp; call *%rcx; pop %rbp; ret
        let frame = [
            0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5, 0xff, 0xd1, 0x5d, 0xc3,
        ];
        assert_eq!(call_end(&frame), Some(10));
        assert_eq!(call_end(&[0x55, 0x48, 0x89, 0xe5]), None);
    }
}
