//! The one lifecycle of every tracing command, written once because its order is a matter of
//! correctness: the target found (or started, held at exec) → the tracer attached, disarmed →
//! armed in one step → the target released → streamed events and interval reports until a stop
//! condition → disarmed in one step → detached → drained → the last report.
pub mod children;
pub mod job;
pub mod run_as;
pub mod tracee;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::kernel::Probes;
use crate::output::{Output, Window, clock};
use crate::session::children::Children;
use crate::session::run_as::RunAs;
use crate::session::tracee::Tracee;
use crate::signals::stop_requested;
use crate::target::Target;
use crate::target::privileges::check_privileges;

/// The probes a tracer attached: what the session arms in one step, meters, disarms and detaches.
pub trait Probed {
    fn probes(&mut self) -> &mut Probes;
}

/// `probes_in_field!(GcTracer)`: the tracer keeps its probes in its field `probes`, as most do.
macro_rules! probes_in_field {
    ($tracer:ty) => {
        impl $crate::session::Probed for $tracer {
            fn probes(&mut self) -> &mut $crate::kernel::Probes {
                &mut self.probes
            }
        }
    };
}
pub(crate) use probes_in_field;

/// What every tracer gives the session: its probes, what it streams, and what it recorded.
pub trait Tracer: Probed {
    /// What it streams as it happens (`output::Never` when it only aggregates).
    type Event;
    type Report: Report;

    /// Whether its probes follow the processes the target forks (`--subprocesses`).
    fn follows_children(&self) -> bool {
        false
    }

    /// Takes what the kernel streamed into `events`, waiting for it up to `timeout`; a tracer
    /// that only aggregates in maps just waits.
    fn poll(&mut self, timeout: Duration, _events: &mut Vec<Self::Event>) -> Result<()> {
        std::thread::sleep(timeout);
        Ok(())
    }

    /// Takes everything still buffered once the probes are gone.
    fn drain(&mut self, events: &mut Vec<Self::Event>) -> Result<()> {
        self.poll(Duration::ZERO, events)
    }

    /// What the kernel recorded since the session began.
    fn read(&mut self) -> Result<Self::Report>;

    /// A line for each --filter pattern that has matched no function that ran, `so_far` into
    /// the session or at its end (None).
    fn unmatched_filters(&mut self, _so_far: Option<Duration>) -> Vec<String> {
        Vec::new()
    }
}

/// A reading of what a tracer recorded.
pub trait Report {
    /// What was recorded after an earlier reading (an --interval window).
    fn since(&self, earlier: &Self) -> Self;
}

/// `reported_once!(FlowSummary)`: a report made once, at the end, that has no windows (its
/// `since` is the whole of it).
macro_rules! reported_once {
    ($report:ty) => {
        impl $crate::session::Report for $report {
            fn since(&self, _: &$report) -> $report {
                self.clone()
            }
        }
    };
}
pub(crate) use reported_once;

/// The process to trace: an existing PID, or a command to start and trace from its first call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Pid(i32),
    /// The command line, and the user it runs as (`--user`; pyprobe's own otherwise).
    Command(Vec<std::ffi::OsString>, Option<RunAs>),
}

/// When to stop, and when to report a window of what was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Schedule {
    pub duration: Option<Duration>,
    pub interval: Option<Duration>,
    /// Stop when tracing would slow the target by more than this many percent.
    pub max_overhead: Option<f64>,
    /// Keep the estimates of what tracing costs to the end (--quiet): no line each time the
    /// estimate changes.
    pub quiet: bool,
}

/// How often the cost of tracing is estimated (and the budget checked).
const COST_PERIOD: Duration = Duration::from_secs(1);
/// When a --filter that has matched nothing yet is told, once, while the session runs: long
/// enough for a service to serve a request, short enough to save a wasted session.
const FILTER_GRACE: Duration = Duration::from_secs(3);
/// A new estimate is told when it differs from the last told by this factor.
const COST_CHANGE: f64 = 1.5;

/// A traced process, from the moment it is found until the session ends with it.
pub struct Session {
    tracee: Tracee,
    pub target: Target,
    /// The program the target ran when it was found (an exec changes it).
    program: Option<(u64, u64)>,
}

/// How often a session checks its stop conditions while it waits.
const STEP: Duration = Duration::from_millis(50);

impl Session {
    /// Finds (or starts, held at exec) the process to trace, after checking that tracing is
    /// allowed. Nothing runs in a started command until the session is armed. Tools that
    /// trace calls start a command with CPython's perf trampoline on (`calls`): on 3.12+ it
    /// is what routes every call past the eval-frame source.
    pub fn open(spec: &TargetSpec, calls: bool) -> Result<Session> {
        check_privileges()?;
        crate::kernel::overhead::calibrate_in_background();
        let (tracee, target) = match spec {
            TargetSpec::Pid(pid) => (Tracee::attach(*pid), Target::from_pid(*pid)?),
            TargetSpec::Command(argv, user) => Tracee::spawn(argv, user.as_ref(), calls)?,
        };
        let program = executable(target.pid).map(|(id, _)| id);
        Ok(Session {
            tracee,
            target,
            program,
        })
    }

    /// Runs the session for a tracer whose probes are attached and disarmed: arms them, lets
    /// the target go, and until Ctrl-C, the duration or the target's exit writes what the
    /// tracer streams and a report every interval. Then, however the run ended, disarms every
    /// probe at once, detaches them, stops a command pyprobe started, and writes what was
    /// still buffered and the last report.
    pub fn run<T: Tracer>(
        &mut self,
        tracer: &mut T,
        out: &mut dyn Output<T::Event, T::Report>,
        what: &str,
        schedule: Schedule,
    ) -> Result<()>
    where
        T::Report: Default,
    {
        let io = Error::Output;
        out.start().map_err(io)?;
        let mut last = T::Report::default();
        let pid = self.target.pid;
        // Children forked meanwhile are told of, traced or not; a kernel that cannot watch
        // for them (no BTF tracepoints) says so once.
        let mut children = Children::watch(pid)
            .inspect_err(|e| {
                eprintln!(
                    "pyprobe: processes forked from PID {pid} will go unnoticed: {}",
                    e.one_line()
                )
            })
            .ok();
        if let Some(c) = &mut children {
            c.probes().arm()?;
        }
        let ran = tracer.probes().arm().and_then(|()| {
            // The banner promises that everything from here on is recorded; a session with a
            // duration ends by itself, and says when instead of asking for Ctrl-C.
            let end = match schedule.duration {
                Some(d) => format!("for {}.", crate::output::duration(d.as_nanos() as u64)),
                None => "... Hit Ctrl-C to end.".into(),
            };
            eprintln!(
                "Tracing {what} in PID {} (CPython {}, {}) {end}",
                self.target.pid,
                self.target.version_text(),
                crate::escape::escape(&self.target.interpreter)
            );
            self.until_stopped(tracer, out, schedule, &mut last)
        });
        let disarmed = tracer.probes().disarm();
        tracer.probes().detach();
        if let Some(c) = &mut children {
            let _ = c.probes().disarm();
            c.probes().detach();
        }
        self.tracee.finish();
        let followed = tracer.follows_children();
        if let Some(line) = children.as_ref().and_then(|c| c.told(pid, followed)) {
            eprintln!("{line}");
        }
        ran?;
        disarmed?;
        let mut events = Vec::new();
        tracer.drain(&mut events)?;
        for e in &events {
            out.event(e).map_err(io)?;
        }
        let window = Window {
            clock: schedule.interval.map(|_| clock()),
            last: true,
        };
        out.report(&tracer.read()?.since(&last), &window)
            .and_then(|()| out.flush())
            .map_err(io)?;
        // A filter that matched nothing explains an empty report: said last, where it is seen.
        for l in tracer.unmatched_filters(None) {
            eprintln!("pyprobe: {l}");
        }
        Ok(())
    }

    fn until_stopped<T: Tracer>(
        &mut self,
        tracer: &mut T,
        out: &mut dyn Output<T::Event, T::Report>,
        schedule: Schedule,
        last: &mut T::Report,
    ) -> Result<()> {
        let io = Error::Output;
        let mut meter = tracer.probes().meter(self.target.pid)?;
        self.tracee.release();
        let start = Instant::now();
        let mut next_tick = schedule.interval.map(|i| start + i);
        let mut next_cost = start + COST_PERIOD;
        let mut filters_checked = false;
        let mut told: Option<f64> = None;
        // Estimates made, one per COST_PERIOD: the stop says after how many.
        let mut estimates = 0u32;
        let mut events = Vec::new();
        let pid = self.target.pid;
        let program = self.program;
        let ended = loop {
            if stop_requested()
                || schedule.duration.is_some_and(|d| start.elapsed() >= d)
                || self.tracee.has_exited()
            {
                break Ok(());
            }
            if Instant::now() >= next_cost {
                next_cost += COST_PERIOD;
                // An exec replaced the traced program: its probes went with the old one.
                if let (Some(was), Some(now)) = (program, executable(pid))
                    && was != now.0
                {
                    eprintln!(
                        "pyprobe: PID {pid} replaced its program (exec) with {}: the traced \
                         interpreter and its probes are gone; what was recorded until then follows",
                        crate::escape::escape(&now.1)
                    );
                    break Ok(());
                }
                tracer.probes().update_meter(&mut meter)?;
                let cost = meter.estimate();
                estimates += 1;
                // Nothing to tell until the probes have fired.
                let news = match told {
                    None => cost.hits_per_sec > 0.0,
                    Some(t) => cost.slowdown / t >= COST_CHANGE || t / cost.slowdown >= COST_CHANGE,
                };
                if news && !schedule.quiet {
                    eprintln!("pyprobe: PID {pid} spends {}", cost.describe("probe hits"));
                    told = Some(cost.slowdown);
                }
                if let Some(max) = schedule.max_overhead
                    && cost.overhead_percent() > max
                {
                    eprintln!(
                        "pyprobe: stopping after {} s: tracing costs PID {pid} more than \
                         --max-overhead {max}%: {}; what was recorded until now follows",
                        (COST_PERIOD * estimates).as_secs(),
                        cost.summary()
                    );
                    break Ok(());
                }
            }
            if !filters_checked && start.elapsed() >= FILTER_GRACE {
                filters_checked = true;
                for l in tracer.unmatched_filters(Some(FILTER_GRACE)) {
                    eprintln!("pyprobe: {l}");
                }
            }
            if let Some(t) = next_tick
                && Instant::now() >= t
            {
                let now = tracer.read()?;
                let window = Window {
                    clock: Some(clock()),
                    last: false,
                };
                out.report(&now.since(last), &window).map_err(io)?;
                *last = now;
                next_tick = schedule.interval.and_then(|i| t.checked_add(i));
            }
            tracer.poll(STEP, &mut events)?;
            for e in events.drain(..) {
                out.event(&e).map_err(io)?;
            }
            out.flush().map_err(io)?;
        };
        // The whole session's cost, once the probes fired.
        tracer.probes().update_meter(&mut meter)?;
        if let Some(cost) = meter.overall()
            && cost.hits_per_sec > 0.0
        {
            eprintln!(
                "pyprobe: over {:.1} s, PID {pid} spent {}",
                start.elapsed().as_secs_f64(),
                cost.describe("probe hits")
            );
        }
        ended
    }
}

/// The identity (device, inode) of the program a process runs, with its path: an exec changes
/// it.
fn executable(pid: i32) -> Option<((u64, u64), String)> {
    use std::os::unix::fs::MetadataExt;
    let link = format!("/proc/{pid}/exe");
    let meta = std::fs::metadata(&link).ok()?;
    let path = std::fs::read_link(&link)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(((meta.dev(), meta.ino()), path))
}
