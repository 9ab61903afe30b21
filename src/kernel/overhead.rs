//! What tracing costs the target, estimated while it runs: how often its probes fire (the
//! kernel's own run counts of pyprobe's programs) times what each hit costs (the program's own
//! run time, also the kernel's count, plus the trap that runs it, measured on this machine).
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libbpf_rs::libbpf_sys;

use crate::abi::skel::floor::FloorSkelBuilder;
use crate::error::{Error, Result};
use crate::kernel::private_code::PrivateCode;
use crate::kernel::{load, perf};

/// The programs of a session, whose run counts and run times the kernel keeps while run-time
/// statistics are on (`BPF_ENABLE_STATS`, for as long as this holds its descriptor).
pub struct Meter {
    programs: Vec<(OwnedFd, Trap)>,
    /// The traced process, whose CPU time the probes' time is a share of.
    pid: i32,
    _stats: Option<OwnedFd>,
    last: Reading,
    first: Reading,
    /// CPython 3.11's tracing mode is on: it slows the interpreter itself, a cost no program
    /// run shows.
    tracing_mode: bool,
}

/// What brings a program to run in the target, each with its own cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trap {
    /// A uprobe's breakpoint instruction.
    Uprobe,
    /// A hardware breakpoint's debug exception, and perf's handling of it.
    Breakpoint,
}

impl Trap {
    /// What one hit costs on this machine, the program aside.
    pub fn ns(self) -> f64 {
        match self {
            Trap::Uprobe => trap_ns(),
            Trap::Breakpoint => breakpoint_ns(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    at: Option<Instant>,
    runs: u64,
    run_ns: u64,
    /// The traps' time: each program's runs times its trap's cost.
    trap_ns: f64,
    /// The target's CPU time (all threads, user and system: a probe's time is system time),
    /// in clock ticks, the dead threads' included.
    cpu_ns: Option<u64>,
    /// The same to the nanosecond, of its live threads only (`schedstat`).
    live_ns: Option<u64>,
}

/// The cost of tracing over one stretch of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Probe hits per second of wall time.
    pub hits_per_sec: f64,
    /// What one hit costs the target: its trap and its program.
    pub ns_per_hit: f64,
    /// The share of the target's CPU time spent under its probes (0..1).
    pub share: f64,
    /// How many times slower the target's traced work runs: 1 / (1 - the share of its CPU time
    /// its probes took). A process that waits (on I/O, on a lock) is slowed only while it runs.
    pub slowdown: f64,
}

impl Estimate {
    /// Overhead in percent of the untraced run time.
    pub fn overhead_percent(&self) -> f64 {
        (self.slowdown - 1.0) * 100.0
    }

    /// `62% of its CPU time under probes (~2.6x slower): 1.1M probe hits/s x 0.90 us`, for a
    /// stderr line.
    pub fn describe(&self, hits: &str) -> String {
        let rate = if self.hits_per_sec >= 1e6 {
            format!("{:.1}M", self.hits_per_sec / 1e6)
        } else if self.hits_per_sec >= 1e3 {
            format!("{:.1}k", self.hits_per_sec / 1e3)
        } else {
            format!("{:.0}", self.hits_per_sec)
        };
        format!(
            "{}: {rate} {hits}/s x {:.2} us",
            self.summary(),
            self.ns_per_hit / 1e3
        )
    }

    /// `62% of its CPU time under probes (~2.6x slower)`.
    pub fn summary(&self) -> String {
        // The slowdown is 1 / (1 - share): near a share of 1 a few percent of error in the
        // cost of a hit would swing it by tens, so past 80% only a bound is told.
        let how = if self.slowdown < 1.01 {
            format!("{:.1}% slower", self.overhead_percent())
        } else if self.slowdown < 2.0 {
            format!("~{:.0}% slower", self.overhead_percent())
        } else if self.slowdown < MAX_SLOWDOWN * 0.999 {
            format!("~{:.1}x slower", self.slowdown)
        } else {
            format!("{MAX_SLOWDOWN:.0}x slower or more")
        };
        format!(
            "{:.0}% of its CPU time under probes ({how})",
            self.share * 100.0
        )
    }
}

/// The largest slowdown told as a number (80% of the target's time in probes): past it the
/// estimate divides by almost nothing.
pub const MAX_SLOWDOWN: f64 = 5.0;

/// Slowdown from the share of its CPU time a target spends in probes.
pub fn slowdown(probe_share: f64) -> f64 {
    1.0 / (1.0 - probe_share.clamp(0.0, 1.0 - 1.0 / MAX_SLOWDOWN))
}

impl Meter {
    /// Starts measuring `programs` (the session's attached programs) of the target `pid`.
    pub fn start(pid: i32, programs: Vec<(OwnedFd, Trap)>, tracing_mode: bool) -> Meter {
        // SAFETY: an FFI call with a plain enum value; it returns a new descriptor or < 0.
        let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
        // SAFETY: a descriptor the kernel just gave us, owned from here.
        let stats = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
        let mut meter = Meter {
            programs,
            pid,
            _stats: stats,
            last: Reading::default(),
            first: Reading::default(),
            tracing_mode,
        };
        meter.last = meter.read();
        meter.first = meter.last;
        meter
    }

    fn read(&self) -> Reading {
        let (runs, run_ns, trap_ns) = self
            .programs
            .iter()
            .filter_map(|(p, trap)| run_stats(p.as_fd()).map(|(r, t)| (r, t, r as f64 * trap.ns())))
            .fold((0, 0, 0.0), |(r, t, x), (r1, t1, x1)| {
                (r + r1, t + t1, x + x1)
            });
        Reading {
            at: Some(Instant::now()),
            runs,
            run_ns,
            trap_ns,
            cpu_ns: cpu_ns(self.pid),
            live_ns: live_threads_ns(self.pid),
        }
    }

    /// How many programs it meters.
    pub fn programs(&self) -> usize {
        self.programs.len()
    }

    /// Meters a program attached after the start (a breakpoint set when its function first
    /// ran): every run it made came after the start, so its counts join the next estimate.
    pub fn add(&mut self, program: OwnedFd, trap: Trap) {
        self.programs.push((program, trap));
    }

    /// Whether the kernel counts the programs' runs: this meter switched the statistics on
    /// (CAP_SYS_ADMIN), or the host keeps them on (`sysctl kernel.bpf_stats_enabled=1`).
    /// Without them every estimate is zero.
    pub fn counts_runs(&self) -> bool {
        self._stats.is_some()
            || std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
                .is_ok_and(|v| v.trim() == "1")
    }

    /// The cost since the previous estimate (or the start).
    pub fn estimate(&mut self) -> Estimate {
        let now = self.read();
        let before = std::mem::replace(&mut self.last, now);
        self.between(before, now)
    }

    /// The cost since the start, while the target's CPU time can still be read (not after it
    /// was reaped).
    pub fn overall(&mut self) -> Option<Estimate> {
        let now = self.read();
        self.last = now;
        now.cpu_ns.and(self.first.cpu_ns)?;
        Some(self.between(self.first, now))
    }

    fn between(&self, before: Reading, now: Reading) -> Estimate {
        let secs = match (now.at, before.at) {
            (Some(a), Some(b)) => a.duration_since(b).as_secs_f64().max(1e-6),
            _ => 1.0,
        };
        let runs = now.runs.saturating_sub(before.runs) as f64;
        let run_ns = now.run_ns.saturating_sub(before.run_ns) as f64;
        let trap = if runs > 0.0 {
            (now.trap_ns - before.trap_ns).max(0.0) / runs
        } else {
            trap_ns()
        };
        // Tracing mode slows every call, about 400 ns per call measured beside a 700 ns trap:
        // half of it per run (an entry or a return), scaled by this machine's trap.
        let tracing_mode = if self.tracing_mode {
            200.0 * trap_ns() / FALLBACK_TRAP_NS
        } else {
            0.0
        };
        let ns_per_hit = if runs > 0.0 {
            trap + run_ns / runs + tracing_mode
        } else {
            trap
        };
        let probe_ns = runs * ns_per_hit;
        // Of the CPU time the target used (which includes its probes'), or of the wall time
        // when that cannot be read (the target is gone).
        let ticks = now
            .cpu_ns
            .zip(before.cpu_ns)
            .map(|(a, b)| a.saturating_sub(b));
        let live = now
            .live_ns
            .zip(before.live_ns)
            .and_then(|(a, b)| a.checked_sub(b));
        // Clock ticks (10 ms) are exact enough over a busy stretch; a mostly idle target is
        // measured by its live threads' nanoseconds (a thread that ended meanwhile takes its
        // time with it, which makes the live sum fall: then the ticks stand).
        let cpu = match (ticks, live) {
            (Some(t), _) if t >= BUSY_NS => Some(t),
            (_, Some(l)) if l > 0 => Some(l),
            (t, _) => t,
        };
        let share = match cpu {
            Some(cpu) => probe_ns / (cpu as f64).max(probe_ns).max(1.0),
            None => probe_ns / 1e9 / secs,
        };
        Estimate {
            hits_per_sec: runs / secs,
            ns_per_hit,
            share: share.min(1.0),
            slowdown: slowdown(share),
        }
    }
}

/// CPU time over a stretch beyond which clock ticks measure it within 5%.
const BUSY_NS: u64 = 200_000_000;

/// The CPU time of a process's live threads so far, to the nanosecond (the first field of each
/// thread's /proc/PID/task/TID/schedstat).
fn live_threads_ns(pid: i32) -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that ended between the listing and the read has no time left to count.
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// The CPU time a process has used so far (utime + stime, fields 14 and 15 of /proc/PID/stat).
fn cpu_ns(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ns_of(&stat, clock_ticks()?)
}

fn cpu_ns_of(stat: &str, hz: u64) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * (1_000_000_000 / hz))
}

fn clock_ticks() -> Option<u64> {
    // SAFETY: sysconf reads a configuration value and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0)
}

/// How many times a program ran (0 where the kernel does not count runs).
pub fn runs(prog: BorrowedFd<'_>) -> Option<u64> {
    run_stats(prog).map(|(n, _)| n)
}

/// A program's run count and total run time, as the kernel counts them.
fn run_stats(prog: BorrowedFd<'_>) -> Option<(u64, u64)> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: the kernel fills at most `len` bytes of `info`, which we own.
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len) };
    (rc == 0).then_some((info.run_cnt, info.run_time_ns))
}

/// What one uprobe hit costs on this machine: a trap into the kernel and back, whatever the
/// program does. Measured once, in this process, by `calibrate_in_background`; the bench's
/// floor until that is done.
pub fn trap_ns() -> f64 {
    TRAP.get().copied().unwrap_or(FALLBACK_TRAP_NS)
}

static TRAP: OnceLock<f64> = OnceLock::new();

/// What one hit of a hardware breakpoint costs on this machine (a debug exception and perf's
/// handling), measured by `calibrate_in_background` after the trap.
pub fn breakpoint_ns() -> f64 {
    BREAKPOINT.get().copied().unwrap_or(FALLBACK_BREAKPOINT_NS)
}

static BREAKPOINT: OnceLock<f64> = OnceLock::new();

/// Measured here on a VM, in the thread's CPU time: about 9.5 us (issue 13).
const FALLBACK_BREAKPOINT_NS: f64 = 9_500.0;

/// Starts measuring a trap's cost (calls of a function of ours with an empty uprobe on it,
/// against the same calls without) on a thread of its own, started as a session opens: the
/// calibration takes tens of milliseconds that no session loop should wait for.
pub fn calibrate_in_background() {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.set(()).is_ok() {
        std::thread::spawn(|| {
            if calibrate().is_err() {
                let _ = TRAP.set(FALLBACK_TRAP_NS);
            }
            let _ = BREAKPOINT.set(
                measure_hit()
                    .filter(|ns| (1_000.0..200_000.0).contains(ns))
                    .unwrap_or(FALLBACK_BREAKPOINT_NS),
            );
        });
    }
}

/// Measured here on a VM with the kernel's uprobe emulation (a push): the floor of the bench.
const FALLBACK_TRAP_NS: f64 = 700.0;
const CALIBRATION_CALLS: u32 = 4_000;
const ROUNDS: usize = 5;

/// Measures and records (in `TRAP`) a trap's cost, before the calibration probe is detached:
/// calls of pyprobe's private code (`PrivateCode`: why not its own executable) with an empty
/// uprobe on it, against the same calls without.
fn calibrate() -> Result<()> {
    let code = PrivateCode::new().map_err(|e| Error::io(Path::new("memfd"), e))?;
    let time = |n: u32| {
        let t = thread_cpu();
        for _ in 0..n {
            code.call();
            std::hint::black_box(());
        }
        thread_cpu().saturating_sub(t)
    };
    // The least of a few rounds: a round can only be slowed by the machine, never sped up.
    let least = |f: &dyn Fn() -> std::time::Duration| (0..ROUNDS).map(|_| f()).min();
    let bare = least(&|| time(CALIBRATION_CALLS)).unwrap_or_default();
    with_empty_uprobe(&code, || {
        let probed = least(&|| time(CALIBRATION_CALLS)).unwrap_or_default();
        let per_call = probed.saturating_sub(bare).as_nanos() as f64 / f64::from(CALIBRATION_CALLS);
        // A measurement disturbed into nonsense falls back to the known floor.
        let _ = TRAP.set(if (100.0..50_000.0).contains(&per_call) {
            per_call
        } else {
            FALLBACK_TRAP_NS
        });
    })
}

/// Runs `f` with an empty uprobe on pyprobe's private code (calibrating a trap's cost).
pub fn with_empty_uprobe<T>(code: &PrivateCode, f: impl FnOnce() -> T) -> Result<T> {
    let skel = load(FloorSkelBuilder::default(), |_| Ok(()))?;
    let link = skel
        .progs
        .empty_uprobe
        .attach_uprobe(false, 0, code.path(), 0)
        .map_err(|e| Error::bpf("calibrating a uprobe's cost", e))?;
    let out = f();
    drop(link);
    Ok(out)
}

/// Calls per round of `measure_hit`.
const HIT_CALLS: u32 = 500;

/// What one hit of a breakpoint costs: calls of a function of ours with a breakpoint on it in
/// this thread, against the same calls without, in this thread's CPU time (the debug
/// exception's time is the thread's); None where no breakpoint can be had.
pub fn measure_hit() -> Option<f64> {
    // On code of pyprobe's own, in no file another pyprobe runs (PrivateCode says why).
    let code = PrivateCode::new().ok()?;
    let time = || {
        (0..ROUNDS)
            .map(|_| {
                let t = thread_cpu();
                for _ in 0..HIT_CALLS {
                    code.call();
                    std::hint::black_box(());
                }
                thread_cpu().saturating_sub(t)
            })
            .min()
            .unwrap_or(Duration::ZERO)
    };
    let bare = time();
    let event = perf::open(0, code.addr(), false).ok()?;
    let hit = time();
    drop(event);
    Some(hit.saturating_sub(bare).as_nanos() as f64 / f64::from(HIT_CALLS))
}

/// The calling thread's CPU time, to the nanosecond: what a trap costs is measured in it, as
/// the target's share is (its CPU time). Wall time would add whatever else ran meanwhile: on
/// a busy 2-core machine that doubled a breakpoint hit's measured cost (17-25 us for 9.5 us).
pub(crate) fn thread_cpu() -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowdown_grows_with_the_share_of_time_in_probes() {
        assert_eq!(slowdown(0.0), 1.0);
        assert!((slowdown(0.5) - 2.0).abs() < 1e-9);
        assert!((slowdown(0.75) - 4.0).abs() < 1e-9);
        assert!((slowdown(5.0) - MAX_SLOWDOWN).abs() < 1e-9);
    }

    #[test]
    fn reads_cpu_time_past_a_command_name_with_spaces() {
        let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 9 0";
        assert_eq!(cpu_ns_of(stat, 100), Some(3_000_000_000));
        assert_eq!(cpu_ns_of("42 (x) S 1", 100), None);
    }

    #[test]
    fn estimates_read_like_the_arithmetic() {
        let e = |share: f64| Estimate {
            hits_per_sec: 1.1e6,
            ns_per_hit: 900.0,
            share,
            slowdown: slowdown(share),
        };
        assert_eq!(
            e(0.6).describe("calls"),
            "60% of its CPU time under probes (~2.5x slower): 1.1M calls/s x 0.90 us"
        );
        assert_eq!(
            e(0.2).describe("calls"),
            "20% of its CPU time under probes (~25% slower): 1.1M calls/s x 0.90 us"
        );
        assert_eq!(
            e(0.97).describe("calls"),
            "97% of its CPU time under probes (5x slower or more): 1.1M calls/s x 0.90 us"
        );
        let small = Estimate {
            hits_per_sec: 120.0,
            ns_per_hit: 2000.0,
            share: 120.0 * 2000.0 / 1e9,
            slowdown: slowdown(120.0 * 2000.0 / 1e9),
        };
        assert_eq!(
            small.describe("pauses"),
            "0% of its CPU time under probes (0.0% slower): 120 pauses/s x 2.00 us"
        );
        assert!(small.overhead_percent() < 0.1);
    }
}
