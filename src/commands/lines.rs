//! `pyprobe lines`: executions per source line until a stop condition, hottest first.
use std::mem::MaybeUninit;

use crate::cli::LinesArgs;
use crate::error::Result;
use crate::glob;
use crate::lines::{LineCounter, LineOptions, LineReport};
use crate::output::lines;
use crate::process::Schedule;

pub fn run(args: &LinesArgs) -> Result<()> {
    let files = match &args.file {
        Some(g) => glob::file_globs(g)?,
        None => Vec::new(),
    };
    let (mut tracee, target) = super::open_target(&args.target)?;
    let opts = LineOptions {
        files,
        max_lines: args.max_lines,
    };
    let mut storage = MaybeUninit::uninit();
    let counter = LineCounter::attach(&target, &opts, &mut storage)?;
    super::banner("line executions", &target);
    tracee.release();

    let schedule = Schedule {
        duration: args.schedule.duration,
        interval: args.schedule.interval,
    };
    super::report_until_stopped(
        &mut tracee,
        schedule,
        args.json,
        counter,
        LineCounter::read,
        LineReport::since,
        |report: &LineReport| {
            if args.json {
                println!("{}", lines::json(report, args.top));
            } else {
                print!("{}", lines::table(report, args.top));
            }
        },
    )
}
