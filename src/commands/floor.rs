//! The benchmark floor (`pyprobe floor`, hidden, for scripts/bench): empty BPF programs on the
//! same probes, attached the same way as a real tool, so that the probe mechanism's cost can be
//! told from pyprobe's own work.
use std::io;

use crate::abi::skel::floor::{FloorSkel, FloorSkelBuilder};
use crate::commands::tools;
use crate::error::Result;
use crate::kernel::{Loaded, Probes, load};
use crate::output::{Never, Output, Window};
use crate::session::probes_in_field;
use crate::session::{Report, Schedule, Session, TargetSpec, Tracer};
use crate::source::{FunctionPrograms, Plan};

/// Which function tool's probes the floor stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Calls {
    /// pycount's: the counting side
    Count,
    /// pycount --latency's and pyflow's: entries and returns
    Pairs,
}

pub struct Floor {
    _skel: Loaded<FloorSkel<'static>>,
    probes: Probes,
}

probes_in_field!(Floor);

impl Floor {
    /// Empty programs on each named probe, plus (with `tracing_mode`) the 3.11 line-semaphore
    /// holder that pycount --latency and pyflow use.
    pub fn attach(
        session: &Session,
        probes: &[String],
        tracing_mode: bool,
        calls: Option<Calls>,
    ) -> Result<Floor> {
        let target = &session.target;
        let skel = load(FloorSkelBuilder::default(), |_| Ok(()))?;
        let mut links = skel.probes()?;
        for p in probes {
            target.require_probes()?;
            links.usdt(&skel.progs.empty_usdt, target, p)?;
        }
        if tracing_mode {
            links.hold_line_semaphore(&skel.progs.empty_uprobe, target)?;
        }
        if let Some(calls) = calls {
            let (source, plan) = tools::require_functions(target, calls == Calls::Pairs)?;
            let empty = &skel.progs.empty_uprobe;
            source.attach(
                Plan {
                    init: false,
                    ..plan
                },
                &mut links,
                target,
                FunctionPrograms {
                    entry: &skel.progs.empty_usdt,
                    ret: &skel.progs.empty_usdt,
                    tracing_mode: empty,
                    eval_entry: empty,
                    eval_return: empty,
                    init: None,
                },
            )?;
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
    calls: Option<Calls>,
    schedule: Schedule,
) -> Result<()> {
    let mut session = Session::open(spec, calls.is_some())?;
    let mut floor = Floor::attach(&session, probes, tracing_mode, calls)?;
    session.run(
        &mut floor,
        &mut Silent,
        "nothing (empty programs)",
        schedule,
    )
}
