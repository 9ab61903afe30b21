//! Sample GC results, for its formats' unit tests.
use std::time::Duration;

use super::{GcPause, GcReport, GenerationStats};
use crate::trace::histogram::bucket_of;

/// Three full collections of 30, 35 and 1.5 ms in two seconds.
pub fn gc_report() -> GcReport {
    let mut generations: Vec<GenerationStats> = (0..3)
        .map(|g| GenerationStats {
            generation: g,
            ..Default::default()
        })
        .collect();
    let g2 = &mut generations[2];
    for p in [30_000_000u64, 35_000_000, 1_500_000] {
        g2.histogram.add(bucket_of(p), 1);
        g2.count += 1;
        g2.total_ns += p;
        g2.max_ns = g2.max_ns.max(p);
    }
    g2.collected = 300_000;
    GcReport {
        generations,
        elapsed: Duration::from_secs(2),
        ..Default::default()
    }
}

/// A 12 ms full collection that ended at 01:01:01.25 UTC.
pub fn gc_pause() -> GcPause {
    GcPause {
        unix_ns: 3_600_000_000_000 + 61_250_000_000,
        pid: 10,
        tid: 11,
        generation: 2,
        duration_ns: 12_000_000,
        collected: 42,
    }
}
