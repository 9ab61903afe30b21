//! The benchmark floor (`pyprobe floor`, hidden, for scripts/bench): empty BPF programs on the
//! same probes, attached the same way as a real tool, so that the probe mechanism's cost can be
//! told from pyprobe's own work.
use std::io;

use crate::error::Result;
use crate::kernel::skel::floor::{FloorSkel, FloorSkelBuilder};
use crate::kernel::{Loaded, Probes, load};
use crate::output::{Never, Output, Window};
use crate::session::{Report, Schedule, Session, TargetSpec, Tracer};

pub struct Floor {
    _skel: Loaded<FloorSkel<'static>>,
    probes: Probes,
}

impl Floor {
    /// Empty programs on each named probe, plus (with `tracing_mode`) the 3.11 line-semaphore
    /// holder that pycount --latency and pyflow use.
    pub fn attach(session: &Session, probes: &[String], tracing_mode: bool) -> Result<Floor> {
        let target = &session.target;
        target.require_probes()?;
        let skel = load(FloorSkelBuilder::default(), |_| Ok(()))?;
        let mut links = skel.probes()?;
        for p in probes {
            links.usdt(&skel.progs.empty_usdt, target, p)?;
        }
        if tracing_mode {
            links.hold_line_semaphore(&skel.progs.empty_uprobe, target)?;
        }
        Ok(Floor {
            _skel: skel,
            probes: links,
        })
    }
}

impl Report for () {
    fn since(&self, _: &()) {}
}

impl Tracer for Floor {
    type Event = Never;
    type Report = ();

    fn probes(&mut self) -> &mut Probes {
        &mut self.probes
    }

    fn read(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The floor reports nothing.
struct Silent;

impl Output<Never, ()> for Silent {
    fn report(&mut self, _: &(), _: &Window) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn run(
    spec: &TargetSpec,
    probes: &[String],
    tracing_mode: bool,
    schedule: Schedule,
) -> Result<()> {
    let mut session = Session::open(spec)?;
    let mut floor = Floor::attach(&session, probes, tracing_mode)?;
    session.run(
        &mut floor,
        &mut Silent,
        "nothing (empty programs)",
        schedule,
    )
}
