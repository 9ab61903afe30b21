//! pygc's kernel side from userspace: loads bpf/gc.bpf.c for one target, attaches it to
//! gc__start/gc__done, reads the per-generation statistics and takes the streamed pauses.
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, MapFlags};

use super::{GcOptions, GcPause, GcReport, GenerationStats};
use crate::abi::limits::GC_GENERATIONS;
use crate::abi::skel::gc::{GcSkel, GcSkelBuilder};
use crate::abi::types::{GcEvent, GcGenStats};
use crate::abi::{loss_counters, realtime_offset_ns, record};
use crate::commands::tools::{self, Needs};
use crate::error::{Error, Result};
use crate::kernel::{Loaded, Probes, Ring, globals, load, size};
use crate::session::Tracer;
use crate::session::probes_in_field;
use crate::target::Target;
use crate::trace::histogram::Histogram;
use crate::trace::losses::{Loss, Losses};

/// Loaded and attached GC pause tracing for one target.
pub struct GcTracer {
    skel: Loaded<GcSkel<'static>>,
    probes: Probes,
    /// The pauses --min-pause selects; None without it.
    pauses: Option<Ring<GcEvent>>,
    attached_at: Instant,
    /// Dates streamed pauses (kernel timestamps are CLOCK_MONOTONIC).
    realtime_offset_ns: i128,
}

probes_in_field!(GcTracer);

impl GcTracer {
    pub fn attach(target: &Target, opts: &GcOptions) -> Result<GcTracer> {
        tools::require(target, Needs::Probes(&["gc__start", "gc__done"]))?;
        let skel = load(GcSkelBuilder::default(), |open| {
            let ro = globals(open.maps.rodata_data.as_deref_mut());
            ro.stream_pauses = opts.min_pause.is_some();
            ro.min_pause_ns = opts.min_pause.map_or(0, |d| d.as_nanos() as u64);
            if opts.buffer_bytes > 0 {
                size(
                    &mut open.maps.pauses,
                    opts.buffer_bytes,
                    "pause ring buffer",
                )?;
            }
            Ok(())
        })?;
        let mut probes = skel.probes()?;
        probes.usdt(&skel.progs.gc_start, target, "gc__start")?;
        probes.usdt(&skel.progs.gc_done, target, "gc__done")?;
        let pauses = match opts.min_pause {
            Some(_) => Some(Ring::open(&skel.maps.pauses)?),
            None => None,
        };
        Ok(GcTracer {
            skel,
            probes,
            pauses,
            attached_at: Instant::now(),
            realtime_offset_ns: realtime_offset_ns(),
        })
    }
}

impl Tracer for GcTracer {
    type Event = GcPause;
    type Report = GcReport;

    fn poll(&mut self, timeout: Duration, events: &mut Vec<GcPause>) -> Result<()> {
        let Some(ring) = &self.pauses else {
            std::thread::sleep(timeout);
            return Ok(());
        };
        events.extend(ring.poll(timeout)?.into_iter().map(|e| GcPause {
            unix_ns: (e.ts as i128 + self.realtime_offset_ns).max(0) as u64,
            pid: e.pid,
            tid: e.tid,
            generation: e.generation,
            duration_ns: e.duration_ns,
            collected: e.collected,
        }));
        Ok(())
    }

    fn read(&mut self) -> Result<GcReport> {
        let elapsed = self.attached_at.elapsed();
        let map = &self.skel.maps.generations;
        let mut generations = Vec::with_capacity(GC_GENERATIONS);
        for g in 0..GC_GENERATIONS as u32 {
            let value = map
                .lookup(&g.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| Error::bpf("reading the GC statistics", e))?
                .unwrap_or_default();
            let s: GcGenStats = if value.is_empty() {
                GcGenStats::default()
            } else {
                record(&value)
            };
            generations.push(GenerationStats {
                generation: g,
                count: s.count,
                total_ns: s.total_ns,
                max_ns: s.max_ns,
                collected: s.collected,
                histogram: Histogram::from_dense(&s.hist),
            });
        }
        let bss = globals(self.skel.maps.bss_data.as_deref());
        Ok(GcReport {
            generations,
            elapsed,
            other_generation: bss.other_generation,
            losses: Losses::read(
                &loss_counters(&bss.losses),
                &[(Loss::GcUnpaired, None), (Loss::EventsLost, None)],
            ),
        })
    }
}
