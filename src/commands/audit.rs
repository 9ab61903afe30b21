//! `pyprobe audit`: streams the target's sys.audit events until a stop condition.
use std::cell::Cell;
use std::mem::MaybeUninit;

use crate::audit::AuditTracer;
use crate::cli::AuditArgs;
use crate::error::{Error, Result};
use crate::glob;
use crate::output::audit;
use crate::process::{Schedule, run_session};

pub fn run(args: &AuditArgs) -> Result<()> {
    let events = glob::event_globs(&args.event)?;
    let (mut tracee, target) = super::open_target(&args.target)?;
    let mut storage = MaybeUninit::uninit();
    let tracer = AuditTracer::attach(&target, &events, &mut storage)?;
    let since = monotonic_ns();
    let seen = Cell::new(0u64);
    let rb = tracer.events(|e| {
        seen.set(seen.get() + 1);
        if args.json {
            println!("{}", audit::json(&e, since));
        } else {
            print!("{}", audit::row(&e, since));
        }
    })?;
    super::banner("sys.audit events", &target);
    if !args.json {
        print!("{}", audit::header());
    }
    tracee.release();

    let schedule = Schedule {
        duration: args.duration,
        interval: None,
    };
    run_session(
        &mut tracee,
        schedule,
        |d| crate::ring::poll(&rb, d),
        || Ok(()),
    )?;
    // What the target did just before it exited is still in the ring buffer.
    rb.consume()
        .map_err(|e| Error::bpf("draining the ring buffer", e))?;
    let losses = tracer.losses();
    drop(rb);
    let decodes = tracer.decodes;
    drop(tracer);
    tracee.finish();
    if args.json {
        println!("{}", audit::summary_json(seen.get(), &losses, decodes));
    } else {
        print!("{}", audit::summary_table(seen.get(), &losses, decodes));
    }
    Ok(())
}

/// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
