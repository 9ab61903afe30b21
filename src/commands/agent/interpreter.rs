//! One interpreter file's system-wide probes: GC pauses and imports of every process that runs
//! it, now or later, attached once (no process filter) and read per process.
use std::collections::HashMap;
use std::path::Path;

use libbpf_rs::MapCore;

use super::buckets::{BOUNDS_NS, Buckets};
use super::metrics::GcGeneration;
use crate::abi::limits::GC_GENERATIONS;
use crate::abi::skel::agent::{AgentSkel, AgentSkelBuilder};
use crate::abi::types::{AgentGcKey, AgentGcStats, AgentHist};
use crate::abi::{loss_counters, record};
use crate::commands::tools::{self, Needs};
use crate::error::{Error, Result};
use crate::kernel::{Loaded, Probes, entries, globals, load};
use crate::target::Target;

/// What the kernel recorded for one process.
#[derive(Debug, Clone, Default)]
pub struct ProcessReading {
    pub gc: [GcGeneration; GC_GENERATIONS],
    pub imports: Buckets,
}

/// A kernel map's name, entries and capacity.
pub type MapFill = (&'static str, u64, u64);

pub struct Interpreter {
    skel: Loaded<AgentSkel<'static>>,
    probes: Probes,
    /// The import probes are attached (CPython 3.7+).
    pub imports: bool,
}

impl Interpreter {
    /// Attaches to the interpreter file of `target` (reached at `path`), for every process that
    /// runs it; armed at once (no session starts in one step here: each process is read on its
    /// own).
    pub fn attach(target: &Target, path: &Path) -> Result<Interpreter> {
        tools::require(target, Needs::Probes(&["gc__start", "gc__done"]))?;
        let imports = tools::means(
            target,
            Needs::Probes(&["import__find__load__start", "import__find__load__done"]),
        )
        .is_ok();
        let skel = load(AgentSkelBuilder::default(), |open| {
            let ro = globals(open.maps.rodata_data.as_deref_mut());
            ro.bounds_ns = BOUNDS_NS;
            open.progs.import_start.set_autoload(imports);
            open.progs.import_done.set_autoload(imports);
            Ok(())
        })?;
        let mut probes = skel.probes()?;
        probes.usdt_everywhere(&skel.progs.gc_start, path, "gc__start")?;
        probes.usdt_everywhere(&skel.progs.gc_done, path, "gc__done")?;
        if imports {
            probes.usdt_everywhere(&skel.progs.import_start, path, "import__find__load__start")?;
            probes.usdt_everywhere(&skel.progs.import_done, path, "import__find__load__done")?;
        }
        probes.arm()?;
        Ok(Interpreter {
            skel,
            probes,
            imports,
        })
    }

    /// What every process of this file recorded, by process id, and how full each map is:
    /// (map, entries, capacity).
    pub fn read(&self) -> Result<(HashMap<u32, ProcessReading>, [MapFill; 2])> {
        let mut out: HashMap<u32, ProcessReading> = HashMap::new();
        let (mut gc_entries, mut import_entries) = (0, 0);
        let read_err = |e| Error::bpf("reading the agent's statistics", e);
        for (k, v) in entries(&self.skel.maps.gc_stats).map_err(read_err)? {
            gc_entries += 1;
            let key: AgentGcKey = record(&k);
            let s: AgentGcStats = record(&v);
            if let Some(g) = out
                .entry(key.tgid)
                .or_default()
                .gc
                .get_mut(key.generation as usize)
            {
                *g = GcGeneration {
                    pauses: Buckets::from_kernel(&s.pauses),
                    collected: s.collected,
                };
            }
        }
        for (k, v) in entries(&self.skel.maps.import_stats).map_err(read_err)? {
            import_entries += 1;
            let tgid = u32::from_ne_bytes(k[..4].try_into().expect("a u32 key"));
            let h: AgentHist = record(&v);
            out.entry(tgid).or_default().imports = Buckets::from_kernel(&h);
        }
        let maps = &self.skel.maps;
        let fill = [
            ("gc_stats", gc_entries, maps.gc_stats.max_entries().into()),
            (
                "import_stats",
                import_entries,
                maps.import_stats.max_entries().into(),
            ),
        ];
        Ok((out, fill))
    }

    /// Forgets a process that exited (or is not traced): its entries would otherwise stay.
    pub fn forget(&self, tgid: u32) {
        for g in 0..GC_GENERATIONS as u32 {
            let key = AgentGcKey {
                tgid,
                generation: g,
            };
            // SAFETY: a plain #[repr(C)] struct of two u32, read as its bytes.
            let bytes = unsafe { plain::as_bytes(&key) };
            let _ = self.skel.maps.gc_stats.delete(bytes);
        }
        let _ = self.skel.maps.import_stats.delete(&tgid.to_ne_bytes());
    }

    /// Events the kernel side could not record: (kind, count).
    pub fn losses(&self) -> Vec<(&'static str, u64)> {
        let bss = globals(self.skel.maps.bss_data.as_deref());
        let l = loss_counters(&bss.losses);
        // SAFETY: a u64 the kernel writes under us, read afresh.
        let full = unsafe { std::ptr::read_volatile(&bss.stats_full) };
        vec![
            ("gc_unpaired", l.gc_unpaired),
            ("imports_unpaired", l.unpaired_dones),
            ("imports_too_deep", l.too_deep),
            ("threads_full", l.threads_full),
            ("processes_full", full),
        ]
    }

    /// Detaches every probe (the kernel lowers their semaphores in every process).
    pub fn detach(&mut self) {
        let _ = self.probes.disarm();
        self.probes.detach();
    }
}
