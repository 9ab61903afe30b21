//! `pyprobe top`: its arguments.
use std::time::Duration;

use clap::Args;

use super::{DurationArgs, OutputArgs, SampleArgs, TargetArgs, parse_seconds};
use crate::commands::top::{self, SortBy, TopOptions};
use crate::error::Result;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe top --pid 1234                  # live view until q or Ctrl-C
    pyprobe top --pid 1234 --sort total     # by time with the function anywhere on the stack
    pyprobe top --pid 1234 --idle           # waiting threads count too
    pyprobe top --pid 1234 --lines          # a row per line running
    pyprobe top --pid 1234 -d 10 > top.txt  # not a terminal: a table every second

Functions by the share of samples in which they were running themselves (%OWN) or anywhere
on the stack (%TOTAL) over the last interval, and the time those samples stand for since
the start (OWN, TOTAL). A row is a function at its def line (FILE:DEF LINE); with --lines, a
line running (FILE:LINE), as py-spy top's line mode. Keys: o, t, n (or 1, 2, 3) sort by own, total, name; q quits.
Samples are taken as pyprobe record takes them. Formats: text.
";

#[derive(Debug, Args, Clone)]
pub struct TopArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub sample: SampleArgs,
    /// Initial order (keys change it)
    #[arg(short, long, value_enum, default_value_t = SortBy::Own)]
    pub sort: SortBy,
    /// Time between refreshes: seconds, or 500ms, 2s, 1m
    #[arg(short, long, value_name = "DURATION", default_value = "1", value_parser = parse_seconds)]
    pub interval: Duration,
    /// Functions per table when the output is no terminal
    #[arg(short, long, alias = "rows", value_name = "N", default_value_t = 20)]
    pub top: usize,
    #[command(flatten)]
    pub schedule: DurationArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl TopArgs {
    pub fn run(&self) -> Result<()> {
        let opts = TopOptions {
            sample: self.sample.options()?,
            sort: self.sort,
            interval: self.interval,
            rows: self.top,
        };
        let dest = self.output.destination("pyprobe top", top::FORMATS)?;
        top::run(self.target.job(self.schedule.schedule(), dest)?, &opts)
    }
}
