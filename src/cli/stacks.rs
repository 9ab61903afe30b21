//! `pyprobe stacks`: its arguments, and the thread selection that `top` and `record` share.
use clap::Args;

use super::OutputArgs;
use crate::commands::stacks::{self, StacksOptions};
use crate::error::{Error, Result};
use crate::trace::filter::{self, Pattern};

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe stacks --pid 1234                # every thread's Python stack now
    pyprobe stacks --pid 1234 --locals       # with each frame's local variables
    pyprobe stacks --pid 1234 --tid 1240     # one thread
    pyprobe stacks --pid 1234 --json         # as JSON, for scripts

Each thread shows its kernel thread id, whether it is on CPU (active) or waiting (idle),
which one holds the GIL, and its name (threading's Thread.name, read from memory; else the
OS's); each frame `function (file:line)` at its current line, innermost
first. Read from the process's memory, without BPF, on CPython 3.8-3.15 with or without
probes. A process whose threads are waiting is read without stopping it; one whose stacks move
while they are read (and any 3.8-3.10, to learn its threads' ids) is held still for the read,
a few milliseconds, and always let go. Formats: text, json.

Needs no root: any user may read their own processes (same uid, where
kernel.yama.ptrace_scope allows); another user's needs root or CAP_SYS_PTRACE.
";

/// Which threads: every thread with Python frames, one thread, or also the threads that run
/// no Python; and which innermost functions (shared by stacks, top and record).
#[derive(Debug, Args, Clone, Default)]
pub struct ThreadArgs {
    /// Only this thread (its kernel thread id, as `ps -L` and the output show it)
    #[arg(long, value_name = "TID", value_parser = clap::value_parser!(u32).range(1..))]
    pub tid: Option<u32>,
    /// Also show threads that run no Python (native threads, threads starting or ending)
    #[arg(long)]
    pub all_threads: bool,
    /// Only stacks whose innermost function matches: NAME, PREFIX*, or FILE:NAME; repeatable
    #[arg(short, long, value_name = "PATTERN")]
    pub filter: Vec<String>,
}

impl ThreadArgs {
    pub fn filters(&self) -> Result<Vec<Pattern>> {
        if self.tid.is_some() && self.all_threads {
            return Err(Error::Usage(
                "--tid shows one thread and --all-threads every thread: give one of them".into(),
            ));
        }
        filter::parse_all(&self.filter)
    }
}

#[derive(Debug, Args, Clone)]
pub struct StacksArgs {
    /// The process to read
    #[arg(short, long)]
    pub pid: i32,
    /// Each frame's local variables (names, and values of simple types; sizes of containers)
    #[arg(long)]
    pub locals: bool,
    #[command(flatten)]
    pub threads: ThreadArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl StacksArgs {
    pub fn run(&self) -> Result<()> {
        let opts = StacksOptions {
            tid: self.threads.tid,
            all_threads: self.threads.all_threads,
            locals: self.locals,
            filters: self.threads.filters()?,
        };
        let dest = self.output.destination("pyprobe stacks", stacks::FORMATS)?;
        stacks::run(self.pid, &opts, dest)
    }
}
