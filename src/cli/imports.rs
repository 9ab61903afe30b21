//! `pyprobe imports`: its arguments.
use clap::Args;

use super::{DurationArgs, OutputArgs, TargetArgs};
use crate::commands::imports;
use crate::error::Result;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe imports -- python3 app.py           # why does my program start slowly?
    pyprobe imports --pid 1234 -d 30            # imports a running process makes in 30 s
    pyprobe imports --json -- python3 -c 'import pandas'

Each import is shown with its cumulative time (start to done, the imports it triggered
included) and its self time (cumulative minus its children's), indented under the import
that triggered it, slowest first at every level. Only loads are shown: an import of a module
already in sys.modules fires no probe. `from pkg import sub` loads sub inside importlib, which
fires no probe either: its time counts as pkg's self time. CPython's own code behind the
import probes fails inside the program when it imports a module whose name is not UTF-8 (a
file named with other bytes, imported by that name), on every version: pyprobe cannot see that
coming (README: Known limits). Formats: text, json.
";

#[derive(Debug, Args, Clone)]
pub struct ImportsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub schedule: DurationArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ImportsArgs {
    pub fn run(&self) -> Result<()> {
        let dest = self
            .output
            .destination("pyprobe imports", imports::FORMATS)?;
        imports::run(self.target.job(self.schedule.schedule(), dest)?)
    }
}
