//! `pyprobe imports`: every module load until a stop condition, as a tree slowest first.
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::rc::Rc;

use crate::cli::ImportsArgs;
use crate::error::Result;
use crate::imports::{self, ImportReport, ImportTracer};
use crate::output;
use crate::process::{Schedule, run_session};

pub fn run(args: &ImportsArgs) -> Result<()> {
    let (mut tracee, target) = super::open_target(&args.target)?;
    let mut storage = MaybeUninit::uninit();
    let tracer = ImportTracer::attach(&target, &mut storage)?;
    let events = Rc::new(RefCell::new(Vec::new()));
    let rb = tracer.events(events.clone())?;
    super::banner("imports", &target);
    tracee.release();

    let schedule = Schedule {
        duration: args.duration,
        interval: None,
    };
    run_session(&mut tracee, schedule, |d| imports::poll(&rb, d), || Ok(()))?;
    // What the target did just before it exited is still in the ring buffer.
    rb.consume()
        .map_err(|e| crate::error::Error::bpf("draining the ring buffer", e))?;
    let losses = tracer.losses();
    drop(rb);
    drop(tracer);
    tracee.finish();
    let report = ImportReport {
        roots: imports::build_tree(events.take()),
        losses,
    };
    if args.json {
        println!("{}", output::imports::json(&report));
    } else {
        print!("{}", output::imports::table(&report));
    }
    Ok(())
}
