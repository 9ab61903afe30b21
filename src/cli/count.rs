//! `pycount` / `pyprobe count`: its arguments and their validation.
use clap::Args;

use super::{ForceArg, OutputArgs, ScheduleArgs, TargetArgs, TrampolineArg};
use crate::commands::count::{self, CountOptions, CountView, SortKey};
use crate::error::{Error, Result};
use crate::source::SourceChoice;
use crate::trace::filter;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe count --pid 1234                          # all functions, until Ctrl-C or the process exits
    pyprobe count --pid 1234 --filter 'handle_*'      # functions whose name starts with handle_
    pyprobe count --pid 1234 --filter app.py:process  # process() in files ending in /app.py
    pyprobe count --pid 1234 --latency -d 10          # own and total time per function, by own time
    pyprobe count --pid 1234 --latency --sort avg -d 10  # latency percentiles, slowest calls first
    pyprobe count --json -- python3 script.py         # from the first call of a new process
    pyprobe count --pid 1234 --max-overhead 10        # stop if it slows the process by over 10%
    pyprobe count --subprocesses -- python3 pool.py   # the command and every process it forks
    pyprobe count --pid 1234 --tid 1240 --top 10      # one thread's ten most called functions

Functions are shown as FILE:LINE NAME (LINE is the def line): functions that share a name
stay apart. With --latency, OWN is a function's time less its callees' (each call's duration
less its callees' durations, paired in the kernel), TOTAL includes them. On CPython 3.11 counting uses returns only; --latency also needs entries, which
3.11 fires only in tracing mode (about 2x the per-call cost while attached, none after).
On 3.11 pycount refuses a process that loaded a file whose name is not UTF-8 (CPython's probe
code fails on it inside the program); --force attaches anyway.
Formats: text, json.
";

#[derive(Debug, Args, Clone)]
pub struct CountArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub trampoline: TrampolineArg,
    /// Count only matching functions: NAME, PREFIX*, or FILE:NAME (FILE matches the end of the path); repeatable.
    /// A pattern that matched no function that ran is told on stderr after 3 s and at the end
    #[arg(short, long, value_name = "PATTERN")]
    pub filter: Vec<String>,
    /// Also time each call: own time (callees' taken out), total (entry to return, callees
    /// included), percentiles
    #[arg(short = 'L', long)]
    pub latency: bool,
    /// Order of the table [default: count; with --latency own, where the time is spent]
    #[arg(short, long, value_enum)]
    pub sort: Option<SortKey>,
    /// Show only the first N functions
    #[arg(short, long, alias = "rows", value_name = "N")]
    pub top: Option<usize>,
    /// Only this thread's calls (its kernel thread id, as `ps -L` and pyprobe stacks show it)
    #[arg(long, value_name = "TID", value_parser = clap::value_parser!(u32).range(1..))]
    pub tid: Option<u32>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub force: ForceArg,
    /// Also count in the processes the target forks during the session (os.fork,
    /// multiprocessing's fork workers, gunicorn's workers) and those they fork, each apart,
    /// from its first instruction: every row gets the PID it was counted in. A child that runs
    /// another program (exec: subprocess, multiprocessing's spawn and forkserver) is told and
    /// not followed
    #[arg(long)]
    pub subprocesses: bool,
    /// What counts a --filter's calls. watch: hardware data watchpoints on up to 4 functions'
    /// first bytecode unit, on any CPython 3.8-3.15, probes or trampoline or not (about 13-25 us
    /// per call of them, nothing for other calls; calls only); auto takes it wherever it can
    /// count every call asked for (docs/sources.md). breakpoints: hardware breakpoints on the
    /// trampoline's stubs (3.12-3.14; auto's choice with --latency). probe: the probe every
    /// call passes (about 1 us per call of any function)
    #[arg(long, value_enum, default_value_t = SourceChoice::Auto)]
    pub source: SourceChoice,
    /// Size of the kernel's function table
    #[arg(long, value_name = "N", default_value_t = 10240, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_functions: u32,
}

impl CountArgs {
    pub fn run(&self) -> Result<()> {
        if self.tid.is_some() && self.source == SourceChoice::Watch {
            return Err(Error::Usage(
                "--source watch counts every thread's calls: drop --tid, or --source".into(),
            ));
        }
        if self.tid.is_some() && self.subprocesses {
            return Err(Error::Usage(
                "--tid is one thread of the target; the processes it forks have others: give \
                 --tid or --subprocesses"
                    .into(),
            ));
        }
        let opts = CountOptions {
            filters: filter::parse_all(&self.filter)?,
            latency: self.latency,
            tid: self.tid,
            max_functions: self.max_functions,
            activate_trampoline: self.trampoline.activate_trampoline,
            force: self.force.force,
            subprocesses: self.subprocesses,
            lean_maps: false,
            source: self.source,
        };
        let view = CountView {
            sort: self.sort.unwrap_or(SortKey::default_for(self.latency)),
            top: self.top,
        };
        let dest = self.output.destination("pycount", count::FORMATS)?;
        count::run(
            self.target.job(self.schedule.schedule(), dest)?,
            &opts,
            view,
        )
    }
}
