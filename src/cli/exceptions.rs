//! `pyprobe exceptions`: its arguments.
use clap::Args;

use super::{OutputArgs, ScheduleArgs, TargetArgs};
use crate::commands::exceptions::{self, ExceptionOptions};
use crate::error::Result;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe exceptions --pid 1234 -d 10         # which exceptions fly, hottest first
    pyprobe exceptions --pid 1234 --stream      # one line per exception as it ends
    pyprobe exceptions --pid 1234 --filter KeyError --filter parse -i 5s
    pyprobe exceptions --json -- python3 app.py

Counted in the kernel from PyTraceBack_Here, which CPython calls once for each Python frame an
exception passes: its type, the function and line of the first Python frame it passed (where it
was raised, or the Python line that called the C code that raised it), the function it ended in
(caught there, or the thread's outermost frame) and how many frames it passed. Exceptions raised
and caught inside C code (hasattr's AttributeError, a for loop's StopIteration) never reach
Python code and are not seen. CPython 3.8-3.15. Formats: text, json.
";

#[derive(Debug, Args, Clone)]
pub struct ExceptionsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Only exceptions of this type (`KeyError`, `pkg.MyError`) or raised in this function
    /// (`parse`, `Parser.parse`); repeat for more
    #[arg(short, long, value_name = "NAME")]
    pub filter: Vec<String>,
    /// Also print each exception as it ends (one line or JSON object each)
    #[arg(long)]
    pub stream: bool,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ExceptionsArgs {
    pub fn run(&self) -> Result<()> {
        let dest = self
            .output
            .destination("pyprobe exceptions", exceptions::FORMATS)?;
        let opts = ExceptionOptions {
            filters: self.filter.clone(),
            stream: self.stream,
        };
        exceptions::run(self.target.job(self.schedule.schedule(), dest)?, &opts)
    }
}
