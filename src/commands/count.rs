//! `pycount` / `pyprobe count`: per-function call counts and latencies until a stop condition.
use std::mem::MaybeUninit;

use crate::cli::CountArgs;
use crate::count::{CallCounter, CallReport, CountOptions};
use crate::error::Result;
use crate::filter;
use crate::output::calls;
use crate::process::{Schedule, run_session};

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

    let print = |report: &CallReport| {
        if args.json {
            println!("{}", calls::json(report, args.sort, args.top));
        } else {
            print!("{}", calls::table(report, args.sort, args.top));
        }
    };
    let mut last = CallReport::default();
    let schedule = Schedule {
        duration: args.schedule.duration,
        interval: args.schedule.interval,
    };
    run_session(
        &mut tracee,
        schedule,
        |d| {
            std::thread::sleep(d);
            Ok(())
        },
        || {
            let now = counter.read()?;
            if !args.json {
                println!("\n{}", clock());
            }
            print(&now.since(&last));
            last = now;
            Ok(())
        },
    )?;
    let now = counter.read()?;
    drop(counter);
    tracee.finish();
    if args.schedule.interval.is_some() && !args.json {
        println!("\n{}", clock());
    }
    print(&now.since(&last));
    Ok(())
}

/// Wall-clock time of day (UTC) for interval headers.
pub(super) fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}
