//! pygc: GC pauses timed in the kernel per thread from gc__start to gc__done (bpf/gc.bpf.c),
//! bucketed per generation, the long ones streamed as they happen.
mod json;
#[cfg(test)]
mod testing;
mod text;
mod tracer;

use std::time::Duration;

pub use tracer::GcTracer;

use crate::error::Result;
use crate::output::formats;
use crate::output::json::Documents;
use crate::session::Report;
use crate::session::job::Job;
use crate::trace::histogram::Histogram;
use crate::trace::losses::Losses;

formats!(pub GcFormat: Text, Json);

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
        let max_ns = crate::trace::histogram::window_max(&histogram, self.max_ns, earlier.max_ns);
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

impl Report for GcReport {
    fn since(&self, earlier: &GcReport) -> GcReport {
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
}

impl GcReport {
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

pub fn run(job: Job, opts: &GcOptions) -> Result<()> {
    let streams = opts.min_pause.is_some();
    job.trace(
        "GC pauses",
        |target| GcTracer::attach(target, opts),
        |format, w| match format {
            GcFormat::Json => Box::new(Documents::new(w, json::pause, |r, _| json::report(r))),
            GcFormat::Text => Box::new(text::Table::new(w, streams)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::histogram::bucket_of;

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
