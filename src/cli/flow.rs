//! `pyflow` / `pyprobe flow`: its arguments and how they are checked against each other.
use std::time::Duration;

use clap::Args;

use super::{DurationArgs, ForceArg, OutputArgs, TargetArgs, TrampolineArg, parse_buffer_size};
use crate::commands::flow::{self, FlowOptions, Weight};
use crate::error::{Error, Result};
use crate::trace::filter;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe flow --pid 1234                           # every call and return until Ctrl-C
    pyprobe flow --pid 1234 --filter 'handle_*' --subtree  # handle_* and everything it calls
    pyprobe flow --pid 1234 --min-duration 5000 --subtree --filter handle  # only slow requests' paths
    pyprobe flow --pid 1234 --max-depth 2 --tid 1240  # two levels of one thread
    pyprobe flow --json -o flow.jsonl -- python3 app.py  # JSON lines from the first bytecode
    pyprobe flow --format chrome -o trace.json -d 5 --pid 1234  # open in ui.perfetto.dev
    pyprobe flow -o flame.svg -- python3 app.py       # an exact, time-weighted flame graph

Each line: microseconds since tracing began, PID, TID, then -> (call) or <- (return, with the
call's duration) and FILE:LINE NAME (LINE is the def line), indented by depth in its thread.
Events stream through a ring buffer: any that do not fit are counted and reported, as they
happen on stderr and at the end. Filters are decided in the kernel. --max-depth counts shown
calls. With --min-duration a call is known only at its return, so each tree of calls is printed
when its outermost shown call returns. On CPython 3.11, entries fire only in tracing mode,
which pyflow switches on while attached (about 2x the per-call cost, none after), and pyflow
refuses a process that loaded a file whose name is not UTF-8 (CPython's probe code fails on it
inside the program); --force attaches anyway.
Formats: text, json (one object per event, then a summary), chrome (trace-event JSON),
folded (flame graph input), svg (a flame graph); without --format the output file's name
chooses (.json, .folded, .svg; .txt is the text trace). Warnings go to stderr: the trace holds only calls.
";

#[derive(Debug, Args, Clone)]
pub struct FlowArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub trampoline: TrampolineArg,
    /// Show only matching functions: NAME, PREFIX*, or FILE:NAME (FILE matches the end of the path); repeatable.
    /// A pattern that matched no function that ran is told on stderr after 3 s and at the end
    #[arg(short, long, value_name = "PATTERN")]
    pub filter: Vec<String>,
    /// With --filter: also show every call made below a matching call
    #[arg(long)]
    pub subtree: bool,
    /// Show shown calls nested at most N deep (1: only the outermost)
    #[arg(long, value_name = "N")]
    pub max_depth: Option<u32>,
    /// Show only this thread
    #[arg(long, value_name = "TID")]
    pub tid: Option<u32>,
    /// Show only calls that took at least USECS microseconds
    #[arg(long, value_name = "USECS")]
    pub min_duration: Option<f64>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// What a flame graph's widths measure (folded, svg)
    #[arg(long, value_enum, default_value_t = Weight::Time)]
    pub weight: Weight,
    /// Ring buffer size: bytes or with a K or M suffix; a power of two, at least a page
    #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_buffer_size)]
    pub buffer_size: u32,
    #[command(flatten)]
    pub schedule: DurationArgs,
    #[command(flatten)]
    pub force: ForceArg,
    /// Size of the kernel's function table
    #[arg(long, value_name = "N", default_value_t = 10240, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_functions: u32,
}

impl FlowArgs {
    /// Checks the options against each other; no side effects.
    pub fn options(&self) -> Result<FlowOptions> {
        if self.subtree && self.filter.is_empty() {
            return Err(Error::Usage(
                "--subtree shows what a --filter match calls: give --filter".into(),
            ));
        }
        if self.max_depth == Some(0) {
            return Err(Error::Usage("--max-depth must be at least 1".into()));
        }
        if self.tid == Some(0) {
            return Err(Error::Usage("--tid must be a thread id (non-zero)".into()));
        }
        let min_duration = match self.min_duration {
            None => None,
            Some(us) if us >= 0.0 && us.is_finite() => {
                Some(Duration::from_nanos((us * 1e3) as u64))
            }
            Some(us) => {
                return Err(Error::Usage(format!(
                    "--min-duration {us} must be a number of microseconds, 0 or more"
                )));
            }
        };
        Ok(FlowOptions {
            filters: filter::parse_all(&self.filter)?,
            subtree: self.subtree,
            max_depth: self.max_depth,
            tid: self.tid,
            min_duration,
            buffer_size: self.buffer_size,
            max_functions: self.max_functions,
            weight: self.weight,
            activate_trampoline: self.trampoline.activate_trampoline,
            force: self.force.force,
        })
    }

    pub fn run(&self) -> Result<()> {
        let opts = self.options()?;
        let dest = self.output.destination("pyflow", flow::FORMATS)?;
        flow::run(self.target.job(self.schedule.schedule(), dest)?, &opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command, parse};
    use crate::output::Format;

    fn flow(args: &[&str]) -> FlowArgs {
        let mut argv = vec!["pyflow"];
        argv.extend(args);
        match parse(&argv).unwrap().command {
            Command::Flow(f) => f,
            _ => panic!("not flow"),
        }
    }

    #[test]
    fn pyflow_options_are_checked_together() {
        let o = flow(&[
            "--pid",
            "1",
            "--filter",
            "h*",
            "--subtree",
            "--min-duration",
            "2.5",
        ])
        .options()
        .unwrap();
        assert!(o.subtree);
        assert_eq!(o.min_duration, Some(Duration::from_nanos(2500)));
        assert_eq!(o.buffer_size, 4 << 20);
        for (args, why) in [
            (&["--pid", "1", "--subtree"][..], "give --filter"),
            (&["--pid", "1", "--max-depth", "0"][..], "at least 1"),
            (&["--pid", "1", "--min-duration=-1"][..], "microseconds"),
            (&["--pid", "1", "--filter", "a*b"][..], "invalid filter"),
        ] {
            let err = flow(args).options().unwrap_err().to_string();
            assert!(err.contains(why), "{args:?}: {err}");
        }
        let f = flow(&["--pid", "1", "--json", "--format", "svg"]);
        let err = f
            .output
            .destination("pyflow", FORMATS_FOR_TEST)
            .unwrap_err();
        assert!(err.to_string().contains("--json is --format json"), "{err}");
        let f = flow(&["--pid", "1", "--json"]);
        let d = f.output.destination("pyflow", FORMATS_FOR_TEST).unwrap();
        assert_eq!(d.format, Format::Json);
        assert!(parse(&["pyflow", "--pid", "1", "--buffer-size", "5000"]).is_err());
    }

    const FORMATS_FOR_TEST: &[Format] = crate::commands::flow::FORMATS;
}
