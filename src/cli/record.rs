//! `pyprobe record`: its arguments, and the sampling options that `top` shares.
use clap::Args;

use super::{DurationArgs, OutputArgs, TargetArgs, ThreadArgs};
use crate::commands::record::{self, RecordOptions};
use crate::error::{Error, Result};
use crate::output::Format;
use crate::sample::SampleOptions;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe record --pid 1234 -d 30s -o flame.svg              # a flame graph of 30 s
    pyprobe record --format speedscope -o p.json -- python3 app.py   # open in speedscope.app
    pyprobe record --pid 1234 -o cpu.pb.gz                     # pprof: go tool pprof, Pyroscope
    pyprobe record --pid 1234 --idle --per-thread --format folded   # waiting threads too
    pyprobe record --pid 1234 -d 10                            # a table of functions
    pyprobe record --pid 1234 -d 10 --lines --top 20           # the 20 hottest lines
    pyprobe record --pid 1234 --async -o flame.svg             # asyncio: per task (3.11+)

Samples the Python stack of every thread of the process that is on CPU, --rate times per
second of its CPU time, until Ctrl-C, --duration or the process's exit. The stack is walked in
the kernel at each sample (a CPU-clock perf event per CPU) and counted there per thread and
stack; each stack is named once. Works on CPython 3.8-3.15, with or without USDT probes.
--idle also samples threads that are sleeping or waiting, at the same rate, from userspace.
A progress line (samples so far, lost, elapsed) goes to stderr.
--async (asyncio, CPython 3.11-3.15): a running coroutine's samples go under its task and the
tasks awaiting it (`task main;task server;task heavy;handle (app.py:42);...`) in place of the
event loop's frames; the tasks are read from memory as `pyprobe tasks` reads them.
Which line: the table names a function by its def line (FILE:DEF LINE, a row per function;
--lines makes a row per line running instead), the flame graph, folded stacks, speedscope and
pprof name each frame by the line it was running (as py-spy does); JSON has both.
Formats: svg, folded, speedscope, pprof (gzipped profile.proto), text (a table), json.
Without --format the output file's name chooses: .svg, .json, .speedscope.json, .pb.gz,
.folded or .txt (folded); a --format that contradicts the name is refused.
";

/// How to sample (record and top).
#[derive(Debug, Args, Clone)]
pub struct SampleArgs {
    /// Samples per second of each thread's CPU time
    #[arg(short, long, value_name = "HZ", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: u32,
    /// Also sample threads that are sleeping or waiting (off CPU)
    #[arg(long)]
    pub idle: bool,
    #[command(flatten)]
    pub threads: ThreadArgs,
    /// Size of the kernel's table of (thread, stack) counts
    #[arg(long, value_name = "N", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    pub max_stacks: u32,
    /// The table: a row per source line running (FILE:LINE, as py-spy's and austin's line
    /// mode) instead of per function (FILE:DEF LINE)
    #[arg(long)]
    pub lines: bool,
}

impl SampleArgs {
    pub fn options(&self) -> Result<SampleOptions> {
        Ok(SampleOptions {
            rate_hz: self.rate,
            tid: self.threads.tid,
            idle: self.idle,
            all_threads: self.threads.all_threads,
            filters: self.threads.filters()?,
            max_stacks: self.max_stacks,
            lines: self.lines,
            async_tasks: false,
        })
    }
}

#[derive(Debug, Args, Clone)]
pub struct RecordArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub sample: SampleArgs,
    /// Keep threads apart (a root frame, a speedscope profile per thread) instead of merging them
    #[arg(long)]
    pub per_thread: bool,
    /// The table (text): only the first N functions
    #[arg(short, long, alias = "rows", value_name = "N")]
    pub top: Option<usize>,
    /// asyncio (3.11+): a running coroutine's samples under its task, the tasks awaiting it
    /// above, in place of the event loop's frames
    #[arg(long = "async")]
    pub async_tasks: bool,
    #[command(flatten)]
    pub schedule: DurationArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl RecordArgs {
    pub fn run(&self) -> Result<()> {
        let opts = RecordOptions {
            sample: SampleOptions {
                async_tasks: self.async_tasks,
                ..self.sample.options()?
            },
            per_thread: self.per_thread,
            top: self.top,
        };
        let dest = self
            .output
            .profile_destination("pyprobe record", record::FORMATS)?;
        if self.sample.lines && dest.format != Format::Text {
            return Err(Error::Usage(format!(
                "--lines is for the table (text); --format {} names each frame by the line it \
                 was running already",
                dest.format
            )));
        }
        record::run(self.target.job(self.schedule.schedule(), dest)?, &opts)
    }
}
