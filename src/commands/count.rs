//! `pycount` / `pyprobe count`: per-function call counts and latencies until a stop condition.
use std::mem::MaybeUninit;

use crate::cli::CountArgs;
use crate::count::{CallCounter, CallReport, CountOptions};
use crate::error::Result;
use crate::filter;
use crate::output::calls;
use crate::process::Schedule;

pub fn run(args: &CountArgs) -> Result<()> {
    let filters = filter::parse_all(&args.filter)?;
    let (mut tracee, target) = super::open_target(&args.target)?;
    let opts = CountOptions {
        filters,
        latency: args.latency,
        max_functions: args.max_functions,
    };
    let mut storage = MaybeUninit::uninit();
    let counter = CallCounter::attach(&target, &opts, &mut storage)?;
    super::banner(
        if args.latency {
            "calls and latencies"
        } else {
            "calls"
        },
        &target,
    );
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
        CallCounter::read,
        CallReport::since,
        |report: &CallReport| {
            if args.json {
                println!("{}", calls::json(report, args.sort, args.top));
            } else {
                print!("{}", calls::table(report, args.sort, args.top));
            }
        },
    )
}
