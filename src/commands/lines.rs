//! `pyprobe lines`: executions per source line until a stop condition, hottest first.
use std::mem::MaybeUninit;

use crate::cli::LinesArgs;
use crate::error::Result;
use crate::glob;
use crate::lines::{LineCounter, LineOptions, LineReport};
use crate::output::lines;
use crate::process::{Schedule, run_session};

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

    let print = |report: &LineReport| {
        if args.json {
            println!("{}", lines::json(report, args.top));
        } else {
            print!("{}", lines::table(report, args.top));
        }
    };
    let mut last = LineReport::default();
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
                println!("\n{}", super::count::clock());
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
        println!("\n{}", super::count::clock());
    }
    print(&now.since(&last));
    Ok(())
}
