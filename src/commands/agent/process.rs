//! One traced process: its labels, and where --filter asks for functions, its own function
//! probes (attached for this process alone, so that one process over the overhead budget
//! loses them while the others keep theirs), their cost, and their last reading.
use std::time::Duration;

use super::discovery::FileId;
use super::metrics::{FunctionProbes, ProcessLabels};
use crate::commands::count::{CallReport, CountOptions, CountTracer};
use crate::error::Result;
use crate::kernel::overhead::{Estimate, Meter};
use crate::session::{Probed, Tracer};
use crate::target::Target;

/// Over budget this many estimates in a row (one a second) stops the function probes: one
/// busy second (a start-up, a cache warming) is not a trend.
const OVER_BUDGET_STREAK: u32 = 3;

pub struct Process {
    pub labels: ProcessLabels,
    pub start_time: u64,
    /// Its interpreter file, where the system-wide probes are attached.
    pub file: Option<FileId>,
    pub functions: Option<Functions>,
    /// --profile's sampler of its CPU stacks.
    pub profile: Option<super::profiles::Profiler>,
    /// What cannot be traced in it, and why: (what, reason).
    pub unsupported: Vec<(&'static str, String)>,
}

/// A process's own function probes.
pub struct Functions {
    tracer: CountTracer,
    meter: Meter,
    over_budget: u32,
    pub state: FunctionProbes,
    pub last: CallReport,
    /// The latest estimate of what the probes cost (kept once they stop).
    pub cost: Option<Estimate>,
}

impl Functions {
    /// Attaches function counting (with `opts.latency`, timing) for `target`, armed at once.
    pub fn attach(target: &Target, opts: &CountOptions) -> Result<Functions> {
        let mut tracer = CountTracer::attach(target, opts)?;
        let meter = tracer.probes().meter(target.pid)?;
        static TOLD: std::sync::Once = std::sync::Once::new();
        if !meter.counts_runs() {
            TOLD.call_once(|| {
                eprintln!(
                    "pyprobe: agent: the kernel does not count BPF program runs here (that takes \
                     CAP_SYS_ADMIN, or sysctl kernel.bpf_stats_enabled=1): the overhead budget \
                     cannot be measured, and function probes are never stopped"
                )
            });
        }
        tracer.probes().arm()?;
        Ok(Functions {
            tracer,
            meter,
            over_budget: 0,
            state: FunctionProbes::Active,
            last: CallReport::default(),
            cost: None,
        })
    }

    /// Reads the counts and the cost since the last call, and stops the probes for good once
    /// they cost more than `budget` percent for several seconds in a row. Returns the estimate
    /// that stopped them.
    pub fn update(&mut self, budget: f64) -> Result<Option<Estimate>> {
        if self.state == FunctionProbes::Stopped {
            return Ok(None);
        }
        // Breakpoints follow the filtered functions that ran for the first time (3.12+ with the
        // trampoline; elsewhere nothing to do).
        self.tracer.poll(Duration::ZERO, &mut Vec::new())?;
        self.tracer.probes().update_meter(&mut self.meter)?;
        let cost = self.meter.estimate();
        self.cost = Some(cost);
        self.over_budget = if cost.overhead_percent() > budget {
            self.over_budget + 1
        } else {
            0
        };
        if self.over_budget >= OVER_BUDGET_STREAK {
            let probes = self.tracer.probes();
            probes.disarm()?;
            probes.detach();
            self.state = FunctionProbes::Stopped;
        }
        // After a stop, one last reading: the maps outlive the probes.
        self.last = self.tracer.read()?;
        Ok((self.state == FunctionProbes::Stopped).then_some(cost))
    }
}
