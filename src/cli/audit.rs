//! `pyprobe audit`: its arguments and their validation.
use clap::Args;

use super::{DurationArgs, OutputArgs, TargetArgs};
use crate::commands::audit;
use crate::error::Result;
use crate::trace::glob;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe audit --pid 1234                      # every audit event, until Ctrl-C
    pyprobe audit --pid 1234 --event 'socket.*'   # sockets only, filtered in the kernel
    pyprobe audit --event open --event 'subprocess.*' -- python3 app.py
    pyprobe audit --json --pid 1234 -d 60         # one JSON object per event, then a summary

Events are PEP 578's (CPython 3.8+). For open, subprocess.Popen, os.system, os.exec,
socket.connect, socket.bind, import, exec and compile the leading arguments are decoded in the
kernel: path, command line, address. A str that is not ASCII (and whose UTF-8 CPython has not
cached) is reported as not decoded rather than guessed. GLOB: '*' any run of characters, '?'
one character; up to 4 --event patterns, an event matching any is shown. Formats: text, json.
";

#[derive(Debug, Args, Clone)]
pub struct AuditArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Show only events whose name matches GLOB; repeatable
    #[arg(short, long, value_name = "GLOB")]
    pub event: Vec<String>,
    #[command(flatten)]
    pub schedule: DurationArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl AuditArgs {
    pub fn run(&self) -> Result<()> {
        let events = glob::event_globs(&self.event)?;
        let dest = self.output.destination("pyprobe audit", audit::FORMATS)?;
        audit::run(self.target.job(self.schedule.schedule(), dest)?, &events)
    }
}
