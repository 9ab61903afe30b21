//! pyprobe imports' kernel side from userspace: loads bpf/imports.bpf.c for one target,
//! attaches it to the import probes, and takes each finished module load.
use std::time::Duration;

use libbpf_rs::{MapCore, MapFlags};

use super::{ImportEvent, ImportReport, build_tree};
use crate::abi::limits::MAX_IMPORT_DEPTH;
use crate::abi::skel::imports::{ImportsSkel, ImportsSkelBuilder};
use crate::abi::types::{ImportEvent as RawImportEvent, ImportStack};
use crate::abi::{loss_counters, record};
use crate::commands::tools::{self, Needs};
use crate::error::Result;
use crate::kernel::{Loaded, Probes, Ring, globals, load};
use crate::output::Never;
use crate::session::Tracer;
use crate::session::probes_in_field;
use crate::target::Target;
use crate::trace::losses::{Loss, Losses};

/// Loaded and attached import tracing for one target.
pub struct ImportTracer {
    skel: Loaded<ImportsSkel<'static>>,
    probes: Probes,
    ring: Ring<RawImportEvent>,
    /// Every finished load so far: the tree needs them all.
    events: Vec<ImportEvent>,
}

probes_in_field!(ImportTracer);

impl ImportTracer {
    pub fn attach(target: &Target) -> Result<ImportTracer> {
        tools::require(
            target,
            Needs::Probes(&["import__find__load__start", "import__find__load__done"]),
        )?;
        let skel = load(ImportsSkelBuilder::default(), |_| Ok(()))?;
        let mut probes = skel.probes()?;
        probes.usdt(
            &skel.progs.import_start,
            target,
            "import__find__load__start",
        )?;
        probes.usdt(&skel.progs.import_done, target, "import__find__load__done")?;
        let ring = Ring::open(&skel.maps.import_events)?;
        Ok(ImportTracer {
            skel,
            probes,
            ring,
            events: Vec::new(),
        })
    }

    /// Imports started on some thread and not finished.
    fn in_progress(&self) -> u64 {
        let stacks = &self.skel.maps.import_stacks;
        stacks
            .keys()
            .filter_map(|k| stacks.lookup(&k, MapFlags::ANY).ok().flatten())
            .map(|v| u64::from(record::<ImportStack>(&v).depth))
            .sum()
    }
}

impl Tracer for ImportTracer {
    type Event = Never;
    type Report = ImportReport;

    fn poll(&mut self, timeout: Duration, _: &mut Vec<Never>) -> Result<()> {
        let taken = self.ring.poll(timeout)?;
        self.events.extend(taken.iter().map(ImportEvent::from_raw));
        Ok(())
    }

    fn read(&mut self) -> Result<ImportReport> {
        let bss = globals(self.skel.maps.bss_data.as_deref());
        let mut losses = Losses::read(
            &loss_counters(&bss.losses),
            &[
                (Loss::EventsLost, None),
                (Loss::UnpairedDones, None),
                (Loss::ImportsTooDeep, Some(MAX_IMPORT_DEPTH as u64)),
                (Loss::ImportThreadsFull, None),
            ],
        );
        losses.set(Loss::InProgress, self.in_progress());
        Ok(ImportReport {
            roots: build_tree(self.events.clone()),
            losses,
        })
    }
}
