//! `pygc` / `pyprobe gc`: GC pause histograms per generation until a stop condition, and the
//! pauses --min-pause selects as they happen.
use std::io::Write;
use std::mem::MaybeUninit;
use std::time::Duration;

use crate::cli::GcArgs;
use crate::error::Result;
use crate::gc::{GcOptions, GcReport, GcTracer};
use crate::output::gc as out;
use crate::process::{Schedule, run_session};

pub fn run(args: &GcArgs) -> Result<()> {
    let (mut tracee, target) = super::open_target(&args.target)?;
    let opts = GcOptions {
        min_pause: args.min_pause.map(Duration::from_micros),
        buffer_bytes: args.buffer_size * 1024,
    };
    let mut storage = MaybeUninit::uninit();
    let tracer = GcTracer::attach(&target, &opts, &mut storage)?;
    let json = args.json;
    let pauses = tracer.pauses(|p| {
        let line = if json {
            out::pause_json(&p).to_string()
        } else {
            out::pause_line(&p)
        };
        emit(&format!("{line}\n"));
    })?;
    super::banner("GC pauses", &target);
    if pauses.is_some() && !json {
        println!("{}", out::PAUSE_HEADER);
    }
    tracee.release();

    let print = |report: &GcReport| {
        if json {
            emit(&format!("{}\n", out::json(report)));
        } else {
            emit(&out::table(report));
        }
    };
    let mut last = GcReport::default();
    let schedule = Schedule {
        duration: args.schedule.duration,
        interval: args.schedule.interval,
    };
    run_session(
        &mut tracee,
        schedule,
        |d| match &pauses {
            Some(p) => p.poll(d),
            None => {
                std::thread::sleep(d);
                Ok(())
            }
        },
        || {
            let now = tracer.read()?;
            if !json {
                println!("\n{}", super::clock());
            }
            print(&now.since(&last));
            last = now;
            Ok(())
        },
    )?;
    if let Some(p) = &pauses {
        p.drain()?;
    }
    let now = tracer.read()?;
    drop(pauses);
    drop(tracer);
    tracee.finish();
    if !json {
        println!();
        if args.schedule.interval.is_some() {
            println!("{}", super::clock());
        }
    }
    print(&now.since(&last));
    Ok(())
}

/// Writes whole lines in one write and flushes: a spawned target may share this stdout, and a
/// pipe reader sees each pause as it happens.
fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
