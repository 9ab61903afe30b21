//! Latency histograms: the kernel's log-linear buckets, percentiles through hdrhistogram, and
//! the power-of-two summary users know from libbpf-tools (`low -> high : count |****|`).
use std::collections::BTreeMap;

/// Sub-buckets per power of two, as the kernel buckets.
pub const SUB_BITS: u32 = crate::abi::limits::HIST_SUB_BITS;
const SUB: u64 = 1 << SUB_BITS;

/// The bucket the kernel puts a value in (mirror of `hist_bucket` in bpf/common.bpf.h).
pub fn bucket_of(v: u64) -> u32 {
    if v < SUB {
        return v as u32;
    }
    let e = 63 - v.leading_zeros();
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    (((e - SUB_BITS + 1) << SUB_BITS) as u64 + sub) as u32
}

/// The half-open value range `[low, high)` of a bucket.
pub fn bucket_bounds(b: u32) -> (u64, u64) {
    let b = b as u64;
    if b < SUB {
        return (b, b + 1);
    }
    let e = (b >> SUB_BITS) + SUB_BITS as u64 - 1;
    let sub = b & (SUB - 1);
    let width = 1u64 << (e - SUB_BITS as u64);
    let low = (SUB + sub) << (e - SUB_BITS as u64);
    (low, low.saturating_add(width))
}

/// A latency distribution as the kernel bucketed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    pub buckets: BTreeMap<u32, u64>,
}

impl Histogram {
    pub fn from_dense(counts: &[u64]) -> Histogram {
        let buckets = counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(b, &c)| (b as u32, c))
            .collect();
        Histogram { buckets }
    }

    pub fn add(&mut self, bucket: u32, count: u64) {
        *self.buckets.entry(bucket).or_default() += count;
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// Counts gained since an earlier reading of the same histogram.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|(&b, &c)| (b, c - earlier.buckets.get(&b).copied().unwrap_or(0).min(c)))
            .filter(|&(_, c)| c > 0)
            .collect();
        Histogram { buckets }
    }

    /// Percentiles (0..=100) estimated at bucket midpoints: within 1/32 of the true value.
    pub fn percentiles(&self, qs: &[f64]) -> Vec<u64> {
        // Auto-resizing, so it grows only to the largest value seen (record_n resizes, the
        // saturating variant would clamp).
        let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits is valid");
        for (&b, &c) in &self.buckets {
            let (lo, hi) = bucket_bounds(b);
            h.record_n(lo + (hi - lo) / 2, c)
                .expect("auto-resizing histogram takes any u64");
        }
        qs.iter()
            .map(|&q| {
                if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(q / 100.0)
                }
            })
            .collect()
    }

    /// Power-of-two rows `(low, high, count)` from the first to the last non-empty one.
    pub fn log2_rows(&self) -> Vec<(u64, u64, u64)> {
        let mut rows: BTreeMap<u32, u64> = BTreeMap::new();
        for (&b, &c) in &self.buckets {
            let (lo, _) = bucket_bounds(b);
            let slot = if lo == 0 { 0 } else { 64 - lo.leading_zeros() };
            *rows.entry(slot).or_default() += c;
        }
        let (Some(&first), Some(&last)) = (rows.keys().next(), rows.keys().last()) else {
            return Vec::new();
        };
        (first..=last)
            .map(|slot| {
                let (lo, hi) = if slot == 0 {
                    (0, 1)
                } else {
                    (1u64 << (slot - 1), (1u64 << slot) - 1)
                };
                (lo, hi, rows.get(&slot).copied().unwrap_or(0))
            })
            .collect()
    }
}

/// The largest value recorded in a window between two readings of a running maximum: exact
/// when the maximum grew in the window, otherwise estimated from the window's histogram
/// (within 1/32) and never above the running maximum.
pub fn window_max(window: &Histogram, max_now: u64, max_before: u64) -> u64 {
    if window.count() == 0 {
        0
    } else if max_now > max_before {
        max_now
    } else {
        window.percentiles(&[100.0])[0].min(max_now)
    }
}

/// Renders log2 rows the libbpf-tools way, with a unit label for the first column.
pub fn render_log2(rows: &[(u64, u64, u64)], unit: &str) -> String {
    const WIDTH: u64 = 40;
    let max = rows.iter().map(|r| r.2).max().unwrap_or(0).max(1);
    let mut out = format!("{:>26} : count    distribution\n", unit);
    for &(lo, hi, c) in rows {
        let stars = (c * WIDTH).div_ceil(max) as usize;
        let stars = if c == 0 { 0 } else { stars };
        out.push_str(&format!(
            "{:>12} -> {:<10} : {:<8} |{:<40}|\n",
            lo,
            hi,
            c,
            "*".repeat(stars)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_sixteen_and_contiguous_above() {
        for v in 0..16 {
            assert_eq!(bucket_of(v), v as u32);
        }
        let mut prev_hi = 16;
        for b in 16..900 {
            let (lo, hi) = bucket_bounds(b);
            assert_eq!(lo, prev_hi, "bucket {b}");
            assert_eq!(bucket_of(lo), b);
            assert_eq!(bucket_of(hi - 1), b);
            assert!((hi - lo) * 16 <= lo, "bucket {b} wider than 1/16");
            prev_hi = hi;
        }
        assert!(bucket_of(u64::MAX) < 1024);
    }

    #[test]
    fn percentiles_are_within_a_thirty_second() {
        let mut h = Histogram::default();
        for v in [10_000_000u64, 20_000_000, 30_000_000, 1_234_567] {
            h.add(bucket_of(v), 1);
        }
        let p = h.percentiles(&[0.0, 100.0]);
        let close =
            |est: u64, truth: u64| (est as f64 - truth as f64).abs() <= truth as f64 / 32.0 + 1.0;
        assert!(close(p[0], 1_234_567), "{p:?}");
        assert!(close(p[1], 30_000_000), "{p:?}");
        let mut wide = Histogram::default();
        wide.add(bucket_of(75_266_711), 1);
        assert!(close(wide.percentiles(&[50.0])[0], 75_266_711));
        let mut one = Histogram::default();
        one.add(bucket_of(10_000_000), 99);
        one.add(bucket_of(50_000_000), 1);
        let p = one.percentiles(&[50.0, 99.0, 100.0]);
        assert!(
            close(p[0], 10_000_000) && close(p[1], 10_000_000) && close(p[2], 50_000_000),
            "{p:?}"
        );
    }

    #[test]
    fn differences_between_readings() {
        let mut a = Histogram::default();
        a.add(3, 2);
        let mut b = a.clone();
        b.add(3, 5);
        b.add(40, 1);
        let d = b.since(&a);
        assert_eq!(d.buckets.get(&3), Some(&5));
        assert_eq!(d.count(), 6);
    }

    #[test]
    fn a_window_maximum_is_exact_when_it_grew_and_estimated_otherwise() {
        let mut w = Histogram::default();
        assert_eq!(
            window_max(&w, 500, 100),
            0,
            "an empty window has no maximum"
        );
        w.add(bucket_of(1_000_000), 3);
        assert_eq!(window_max(&w, 500_000_000, 100), 500_000_000);
        let est = window_max(&w, 500_000_000, 500_000_000);
        assert!((970_000..=1_040_000).contains(&est), "{est}");
    }

    #[test]
    fn log2_rows_span_first_to_last_nonempty() {
        let mut h = Histogram::default();
        h.add(bucket_of(5), 3); // 4..7
        h.add(bucket_of(40), 1); // 32..63
        let rows = h.log2_rows();
        assert_eq!(rows.first(), Some(&(4, 7, 3)));
        assert_eq!(rows.last(), Some(&(32, 63, 1)));
        assert_eq!(rows.len(), 4);
        let text = render_log2(&rows, "usecs");
        assert!(text.contains("4 -> 7"), "{text}");
        assert!(text.contains(&format!("|{}|", "*".repeat(40))), "{text}");
    }
}
