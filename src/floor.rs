//! The benchmark floor: empty BPF programs on the same probes, attached the same way as a real
//! tool, so that scripts/bench can tell the probe mechanism's cost from pyprobe's own work.
use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, OpenObject};

use crate::attach;
use crate::bpf::floor::{FloorSkel, FloorSkelBuilder};
use crate::error::{Error, Result};
use crate::target::Target;

pub struct Floor<'obj> {
    _skel: FloorSkel<'obj>,
    _links: Vec<Link>,
}

impl<'obj> Floor<'obj> {
    /// Empty programs on each named probe, plus (with `tracing_mode`) the 3.11 line-semaphore
    /// holder that pycount --latency and pyflow use.
    pub fn attach(
        target: &Target,
        probes: &[String],
        tracing_mode: bool,
        storage: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<Floor<'obj>> {
        target.require_probes()?;
        let open = FloorSkelBuilder::default()
            .open(storage)
            .map_err(|e| Error::bpf("opening the BPF object", e))?;
        let skel = open
            .load()
            .map_err(|e| Error::bpf("loading the BPF programs", e))?;
        let mut links = Vec::new();
        for p in probes {
            links.push(attach::usdt(&skel.progs.empty_usdt, target, p)?);
        }
        if tracing_mode {
            links.push(attach::hold_line_semaphore(
                &skel.progs.empty_uprobe,
                target,
            )?);
        }
        Ok(Floor {
            _skel: skel,
            _links: links,
        })
    }
}
