//! One function's calls and, with --latency, their durations: what pycount reports per
//! function, whichever source counted them (the shared probe, breakpoints or watchpoints).
use crate::trace::function::Function;
use crate::trace::histogram::{Histogram, window_max};

/// One function's calls, and with --latency their durations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionStats {
    pub function: Function,
    /// The process the calls were made in, when following forked ones (`--subprocesses`).
    pub pid: Option<u32>,
    pub count: u64,
    /// Calls whose duration was measured (entry and return both seen).
    pub timed: u64,
    pub total_ns: u64,
    /// The timed calls' own (exclusive) time: each one's duration less its callees' that
    /// pyprobe paired (every call, but with breakpoints only the filtered functions').
    pub own_ns: u64,
    pub max_ns: u64,
    pub histogram: Histogram,
}

impl FunctionStats {
    /// Latency percentiles; a bucket midpoint never reports more than the exact maximum.
    pub fn percentiles(&self, qs: &[f64]) -> Vec<u64> {
        let cap = if self.max_ns > 0 {
            self.max_ns
        } else {
            u64::MAX
        };
        self.histogram
            .percentiles(qs)
            .into_iter()
            .map(|p| p.min(cap))
            .collect()
    }

    pub fn avg_ns(&self) -> u64 {
        self.total_ns.checked_div(self.timed).unwrap_or(0)
    }

    /// The statistics gained since an earlier reading of the same function.
    pub fn since(&self, earlier: &FunctionStats) -> FunctionStats {
        let histogram = self.histogram.since(&earlier.histogram);
        FunctionStats {
            count: self.count - earlier.count.min(self.count),
            timed: self.timed - earlier.timed.min(self.timed),
            total_ns: self.total_ns - earlier.total_ns.min(self.total_ns),
            own_ns: self.own_ns - earlier.own_ns.min(self.own_ns),
            max_ns: window_max(&histogram, self.max_ns, earlier.max_ns),
            histogram,
            ..self.clone()
        }
    }
}
