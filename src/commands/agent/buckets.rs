//! The agent's duration buckets: Prometheus' `le` bounds in seconds, counted exactly in the
//! kernel for GC pauses and imports (bpf/agent.bpf.c), and from pycount's log-linear buckets
//! for function latency.
use crate::abi::limits::AGENT_BUCKETS;
use crate::abi::types::AgentHist;
use crate::trace::histogram::{Histogram, bucket_bounds};

/// Upper bounds in nanoseconds, from 10 us to 10 s (the last bucket, +Inf, has none).
pub const BOUNDS_NS: [u64; AGENT_BUCKETS - 1] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A duration histogram as Prometheus shows it: counts per bucket (not cumulative), the last
/// above every bound, their sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    pub counts: [u64; AGENT_BUCKETS],
    pub sum_ns: u64,
    pub count: u64,
}

impl Buckets {
    pub fn from_kernel(h: &AgentHist) -> Buckets {
        Buckets {
            counts: h.buckets,
            sum_ns: h.sum_ns,
            count: h.count,
        }
    }

    /// From pycount's log-linear buckets: each counted at its midpoint, so a call within 1/32
    /// of a bound may land on the other side of it.
    pub fn from_log_linear(h: &Histogram, sum_ns: u64) -> Buckets {
        let mut b = Buckets {
            sum_ns,
            ..Buckets::default()
        };
        for (&bucket, &n) in &h.buckets {
            let (lo, hi) = bucket_bounds(bucket);
            b.add(lo + (hi - lo) / 2, n);
        }
        b
    }

    fn add(&mut self, ns: u64, n: u64) {
        let i = BOUNDS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(AGENT_BUCKETS - 1);
        self.counts[i] += n;
        self.count += n;
    }

    /// `(le in seconds, count in that bucket)`, the last `le` being +Inf.
    pub fn prometheus(&self) -> Vec<(f64, u64)> {
        BOUNDS_NS
            .iter()
            .map(|&ns| ns as f64 / 1e9)
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::histogram::bucket_of;

    #[test]
    fn bounds_ascend_and_fill_the_kernel_table() {
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(BOUNDS_NS.len() + 1, AGENT_BUCKETS);
    }

    #[test]
    fn log_linear_buckets_land_below_their_bound() {
        let mut h = Histogram::default();
        h.add(bucket_of(9_000), 2); // 9 us: <= 10 us
        h.add(bucket_of(700_000), 1); // 0.7 ms: <= 1 ms
        h.add(bucket_of(20_000_000_000), 1); // 20 s: +Inf
        let b = Buckets::from_log_linear(&h, 123);
        let p = b.prometheus();
        assert_eq!(p[0], (10e-6, 2));
        assert_eq!(p[6], (1e-3, 1));
        assert_eq!(p[AGENT_BUCKETS - 1], (f64::INFINITY, 1));
        assert_eq!((b.count, b.sum_ns), (4, 123));
    }
}
