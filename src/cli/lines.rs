//! `pyprobe lines`: its arguments and their validation.
use clap::Args;

use super::{ForceArg, OutputArgs, ScheduleArgs, TargetArgs};
use crate::commands::lines::{self, LineOptions};
use crate::error::Result;
use crate::trace::glob;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe lines --pid 1234                    # every line, until Ctrl-C or the process exits
    pyprobe lines --pid 1234 --file app.py      # lines of files whose path ends in /app.py
    pyprobe lines --pid 1234 --file '/srv/*' --top 20 -d 10   # 20 hottest lines under /srv
    pyprobe lines --json -- python3 script.py   # from the first line of a new process

GLOB: '*' matches any run of characters (including '/'), '?' one character. A GLOB that
starts with '/' or '*' is matched against the whole path; otherwise it also matches after any
'/'. It is decided in the kernel once per file. The line probe exists only up to CPython 3.11;
on 3.11 it puts the interpreter into tracing mode while attached (several times slower).
CPython's code behind it fails inside the program on a file name that is not UTF-8: pyprobe
refuses a process that loaded such a file; --force attaches anyway.
Formats: text, json.
";

#[derive(Debug, Args, Clone)]
pub struct LinesArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Count only lines of files whose path matches GLOB
    #[arg(short = 'F', long, value_name = "GLOB")]
    pub file: Option<String>,
    /// Show only the N hottest lines
    #[arg(short, long, alias = "rows", value_name = "N")]
    pub top: Option<usize>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub force: ForceArg,
    /// Size of the kernel's line table
    #[arg(long, value_name = "N", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    pub max_lines: u32,
}

impl LinesArgs {
    pub fn run(&self) -> Result<()> {
        let opts = LineOptions {
            files: match &self.file {
                Some(g) => glob::file_globs(g)?,
                None => Vec::new(),
            },
            max_lines: self.max_lines,
            force: self.force.force,
        };
        let dest = self.output.destination("pyprobe lines", lines::FORMATS)?;
        lines::run(
            self.target.job(self.schedule.schedule(), dest)?,
            &opts,
            self.top,
        )
    }
}
