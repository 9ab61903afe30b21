//! pygc's engine: loads bpf/gc.bpf.c for one target, attaches it to gc__start/gc__done, reads the
//! per-generation pause statistics the kernel keeps, and streams the pauses --min-pause selects.
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject, RingBuffer, RingBufferBuilder};

use crate::attach;
use crate::bpf::gc::{GcSkel, GcSkelBuilder};
use crate::bpf::record;
use crate::bpf::types::{GcEvent, GcGenStats};
use crate::error::{Error, Result};
use crate::histogram::Histogram;
use crate::losses::Losses;
use crate::target::Target;
use crate::versions;

/// CPython collects in three generations (0 youngest, 2 the full collection).
pub const GENERATIONS: usize = 3;

#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Also stream every pause at least this long.
    pub min_pause: Option<Duration>,
    /// Size of the pause ring buffer in bytes (a power of two, whole pages).
    pub buffer_bytes: u32,
}

/// The pauses of one generation, as the kernel summed and bucketed them (nanoseconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationStats {
    pub generation: u32,
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    /// Objects the collections freed (collected plus uncollectable, as gc.collect() returns).
    pub collected: u64,
    pub histogram: Histogram,
}

impl GenerationStats {
    /// The pauses since an earlier reading. The kernel keeps one running maximum: when it grew,
    /// the new maximum happened in this window and is exact; otherwise the window's largest
    /// pause is estimated from its histogram (within 1/32), never above the running maximum.
    pub fn since(&self, earlier: &GenerationStats) -> GenerationStats {
        let histogram = self.histogram.since(&earlier.histogram);
        let max_ns = crate::histogram::window_max(&histogram, self.max_ns, earlier.max_ns);
        GenerationStats {
            generation: self.generation,
            count: self.count.saturating_sub(earlier.count),
            total_ns: self.total_ns.saturating_sub(earlier.total_ns),
            max_ns,
            collected: self.collected.saturating_sub(earlier.collected),
            histogram,
        }
    }

    pub fn percentiles(&self) -> [u64; 3] {
        let p = self.histogram.percentiles(&[50.0, 90.0, 99.0]);
        // A percentile estimated at a bucket's midpoint may pass the exact maximum.
        [p[0], p[1], p[2]].map(|v| v.min(self.max_ns))
    }
}

/// One reading of every generation, the wall time it covers, and what was lost.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    pub generations: Vec<GenerationStats>,
    /// Wall time covered: since attach, or since the previous reading for --interval.
    pub elapsed: Duration,
    /// Collections of a generation outside 0..=2 (none on known versions): counted, not shown.
    pub other_generation: u64,
    pub losses: Losses,
}

impl GcReport {
    pub fn since(&self, earlier: &GcReport) -> GcReport {
        let generations = self
            .generations
            .iter()
            .map(|g| {
                match earlier
                    .generations
                    .iter()
                    .find(|e| e.generation == g.generation)
                {
                    Some(e) => g.since(e),
                    None => g.clone(),
                }
            })
            .collect();
        GcReport {
            generations,
            elapsed: self.elapsed.saturating_sub(earlier.elapsed),
            other_generation: self
                .other_generation
                .saturating_sub(earlier.other_generation),
            losses: self.losses.since(&earlier.losses),
        }
    }

    pub fn collections(&self) -> u64 {
        self.generations.iter().map(|g| g.count).sum()
    }

    pub fn total_pause_ns(&self) -> u64 {
        self.generations.iter().map(|g| g.total_ns).sum()
    }

    /// Fraction of wall time spent in GC pauses (0.0 when no time has passed).
    pub fn gc_share(&self) -> f64 {
        let wall = self.elapsed.as_nanos() as f64;
        if wall > 0.0 {
            self.total_pause_ns() as f64 / wall
        } else {
            0.0
        }
    }
}

/// One pause that reached --min-pause, as it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPause {
    /// When the collection ended, in nanoseconds since the Unix epoch.
    pub unix_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub generation: i32,
    pub duration_ns: u64,
    pub collected: i64,
}

/// Checks that the target's interpreter can be traced for GC pauses.
pub fn check_target(target: &Target) -> Result<()> {
    target.require_probes()?;
    for probe in ["gc__start", "gc__done"] {
        let missing = target.elf.probe(probe).is_none();
        let broken = target
            .version
            .map(|v| versions::probe_support(v, probe))
            .filter(|s| !s.works());
        if missing || broken.is_some() {
            return Err(Error::ProbeUnavailable(format!(
                "{} (CPython {}) has no working {probe} probe, which pygc needs",
                target.interpreter,
                target.version_text()
            )));
        }
    }
    Ok(())
}

/// Loaded and attached GC pause tracing for one target; dropping it detaches both probes.
pub struct GcTracer<'obj> {
    skel: GcSkel<'obj>,
    _links: Vec<Link>,
    attached_at: Instant,
    streaming: bool,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC (bpf_ktime_get_ns), to date streamed pauses.
    realtime_offset_ns: i128,
}

impl<'obj> GcTracer<'obj> {
    pub fn attach(
        target: &Target,
        opts: &GcOptions,
        storage: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<GcTracer<'obj>> {
        check_target(target)?;
        let mut open = GcSkelBuilder::default()
            .open(storage)
            .map_err(|e| Error::bpf("opening the BPF object", e))?;
        let ro = open
            .maps
            .rodata_data
            .as_deref_mut()
            .expect("gc.bpf.c has rodata");
        ro.target_tgid = target.pid as u32;
        ro.stream_pauses = opts.min_pause.is_some();
        ro.min_pause_ns = opts.min_pause.map_or(0, |d| d.as_nanos() as u64);
        if opts.buffer_bytes > 0 {
            open.maps
                .pauses
                .set_max_entries(opts.buffer_bytes)
                .map_err(|e| Error::bpf("sizing the pause ring buffer", e))?;
        }
        let skel = open
            .load()
            .map_err(|e| Error::bpf("loading the BPF programs", e))?;
        let links = vec![
            attach::usdt(&skel.progs.gc_start, target, "gc__start")?,
            attach::usdt(&skel.progs.gc_done, target, "gc__done")?,
        ];
        Ok(GcTracer {
            skel,
            _links: links,
            attached_at: Instant::now(),
            streaming: opts.min_pause.is_some(),
            realtime_offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
        })
    }

    /// Reads every generation's statistics and the loss counters.
    pub fn read(&self) -> Result<GcReport> {
        let elapsed = self.attached_at.elapsed();
        let map = &self.skel.maps.generations;
        let mut generations = Vec::with_capacity(GENERATIONS);
        for g in 0..GENERATIONS as u32 {
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
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref()
            .expect("gc.bpf.c has bss");
        Ok(GcReport {
            generations,
            elapsed,
            other_generation: bss.other_generation,
            losses: Losses::from_bpf(&crate::bpf::same_struct(&bss.losses), 0),
        })
    }

    /// The stream of pauses --min-pause selects, each handed to `on_pause` as it is polled;
    /// None when no --min-pause was given.
    pub fn pauses<'a>(
        &'a self,
        mut on_pause: impl FnMut(GcPause) + 'a,
    ) -> Result<Option<PauseStream<'a>>> {
        if !self.streaming {
            return Ok(None);
        }
        let offset = self.realtime_offset_ns;
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&self.skel.maps.pauses, move |bytes: &[u8]| {
                let e: GcEvent = record(bytes);
                on_pause(GcPause {
                    unix_ns: (e.ts as i128 + offset).max(0) as u64,
                    pid: e.pid,
                    tid: e.tid,
                    generation: e.generation,
                    duration_ns: e.duration_ns,
                    collected: e.collected,
                });
                0
            })
            .map_err(|e| Error::bpf("reading the pause ring buffer", e))?;
        let ring = builder
            .build()
            .map_err(|e| Error::bpf("reading the pause ring buffer", e))?;
        Ok(Some(PauseStream { ring }))
    }
}

/// Streamed pauses, delivered by polling.
pub struct PauseStream<'a> {
    ring: RingBuffer<'a>,
}

impl PauseStream<'_> {
    /// Delivers pauses for up to `timeout`; a signal cutting the wait short is not an error.
    pub fn poll(&self, timeout: Duration) -> Result<()> {
        crate::ring::poll(&self.ring, timeout)
    }

    /// Delivers every pause still waiting (at the end of a session).
    pub fn drain(&self) -> Result<()> {
        let rc = self.ring.consume_raw();
        if rc < 0 {
            return Err(Error::bpf(
                "draining the pause ring buffer",
                libbpf_rs::Error::from_raw_os_error(-rc),
            ));
        }
        Ok(())
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::bucket_of;

    fn generation(count: u64, pauses: &[u64]) -> GenerationStats {
        let mut histogram = Histogram::default();
        for &p in pauses {
            histogram.add(bucket_of(p), 1);
        }
        GenerationStats {
            generation: 2,
            count,
            total_ns: pauses.iter().sum(),
            max_ns: pauses.iter().copied().max().unwrap_or(0),
            collected: count * 10,
            histogram,
        }
    }

    #[test]
    fn an_interval_whose_pause_set_a_new_maximum_reports_it_exactly() {
        let before = generation(1, &[1_000_000]);
        let after = generation(2, &[1_000_000, 5_000_123]);
        let d = after.since(&before);
        assert_eq!(
            (d.count, d.total_ns, d.max_ns, d.collected),
            (1, 5_000_123, 5_000_123, 10)
        );
    }

    #[test]
    fn an_interval_below_the_running_maximum_estimates_its_own() {
        let before = generation(1, &[9_000_000]);
        let after = generation(2, &[9_000_000, 2_000_000]);
        let d = after.since(&before);
        assert_eq!(d.count, 1);
        assert!(
            d.max_ns.abs_diff(2_000_000) <= 2_000_000 / 32,
            "{}",
            d.max_ns
        );
        let idle = after.since(&after);
        assert_eq!((idle.count, idle.max_ns), (0, 0));
    }

    #[test]
    fn gc_share_is_pause_time_over_wall_time() {
        let r = GcReport {
            generations: vec![generation(2, &[10_000_000, 40_000_000])],
            elapsed: Duration::from_secs(1),
            ..Default::default()
        };
        assert_eq!(r.total_pause_ns(), 50_000_000);
        assert!((r.gc_share() - 0.05).abs() < 1e-12);
        assert_eq!(GcReport::default().gc_share(), 0.0);
    }
}
