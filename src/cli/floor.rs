//! `pyprobe floor` (hidden, for scripts/bench): its arguments.
use clap::Args;

use super::{DurationArgs, TargetArgs};
use crate::commands::floor;
use crate::error::Result;

#[derive(Debug, Args)]
pub struct FloorArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// A USDT probe to attach an empty program to (repeatable)
    #[arg(long, required_unless_present = "calls")]
    pub probe: Vec<String>,
    /// Also raise the line probe's semaphore with a never-firing uprobe (3.11 tracing mode)
    #[arg(long)]
    pub tracing_mode: bool,
    /// Empty programs where pycount (`count`) or pycount --latency and pyflow (`pairs`) attach
    /// on this target, through its function source
    #[arg(long, value_enum)]
    pub calls: Option<floor::Calls>,
    #[command(flatten)]
    pub schedule: DurationArgs,
}

impl FloorArgs {
    pub fn run(&self) -> Result<()> {
        floor::run(
            &self.target.spec()?,
            &self.probe,
            self.tracing_mode,
            self.calls,
            self.schedule.schedule(),
        )
    }
}
