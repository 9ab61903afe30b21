//! `pyprobe floor` (hidden, for scripts/bench): hold empty programs on probes until stopped.
use std::mem::MaybeUninit;

use crate::cli::FloorArgs;
use crate::error::Result;
use crate::floor::Floor;
use crate::process::{Schedule, run_session};

pub fn run(args: &FloorArgs) -> Result<()> {
    let (mut tracee, target) = super::open_target(&args.target)?;
    let mut storage = MaybeUninit::uninit();
    let floor = Floor::attach(&target, &args.probe, args.tracing_mode, &mut storage)?;
    super::banner("nothing (empty programs)", &target);
    tracee.release();
    run_session(
        &mut tracee,
        Schedule {
            duration: args.duration,
            interval: None,
        },
        |d| {
            std::thread::sleep(d);
            Ok(())
        },
        || Ok(()),
    )?;
    drop(floor);
    Ok(())
}
