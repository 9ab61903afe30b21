//! What the kernel side could not record, read from its counters and reported with every output.
use crate::bpf::types::LossCounters;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Losses {
    /// Calls not counted because the function table was full (its size is `table_size`).
    pub functions_full: u64,
    pub table_size: u32,
    /// Latency samples dropped because the histogram table was full.
    pub hist_full: u64,
    /// Entries not timed because the per-thread stack table was full.
    pub threads_full: u64,
    /// Entries deeper than the per-thread stack, counted but not timed.
    pub too_deep: u64,
    /// Returns whose entry was not seen (calls already running at attach time).
    pub unpaired_returns: u64,
    /// Probe hits whose code object could not be read (counted under file and name instead).
    pub code_read_errors: u64,
    /// Events the ring buffer had no room for.
    pub events_lost: u64,
    /// GC pauses whose start was not seen (a collection running at attach).
    pub gc_unpaired: u64,
    /// Calls whose return never fired (3.15 exits by exception): counted, not timed.
    pub exits_unseen: u64,
}

impl Losses {
    pub fn from_bpf(c: &LossCounters, table_size: u32) -> Losses {
        Losses {
            functions_full: c.functions_full,
            table_size,
            hist_full: c.hist_full,
            threads_full: c.threads_full,
            too_deep: c.too_deep,
            unpaired_returns: c.unpaired_returns,
            code_read_errors: c.code_read_errors,
            events_lost: c.events_lost,
            gc_unpaired: c.gc_unpaired,
            exits_unseen: c.exits_unseen,
        }
    }

    pub fn since(&self, e: &Losses) -> Losses {
        Losses {
            functions_full: self.functions_full.saturating_sub(e.functions_full),
            table_size: self.table_size,
            hist_full: self.hist_full.saturating_sub(e.hist_full),
            threads_full: self.threads_full.saturating_sub(e.threads_full),
            too_deep: self.too_deep.saturating_sub(e.too_deep),
            unpaired_returns: self.unpaired_returns.saturating_sub(e.unpaired_returns),
            code_read_errors: self.code_read_errors.saturating_sub(e.code_read_errors),
            events_lost: self.events_lost.saturating_sub(e.events_lost),
            gc_unpaired: self.gc_unpaired.saturating_sub(e.gc_unpaired),
            exits_unseen: self.exits_unseen.saturating_sub(e.exits_unseen),
        }
    }

    /// Human lines for every non-zero counter; empty when nothing was lost.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut say = |n: u64, what: String| {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        };
        say(
            self.functions_full,
            format!(
                "calls not counted: function table full ({} functions; raise --max-functions)",
                self.table_size
            ),
        );
        say(
            self.hist_full,
            "latency samples dropped: histogram table full".into(),
        );
        say(
            self.threads_full,
            "calls not timed: too many threads".into(),
        );
        say(
            self.too_deep,
            "calls not timed: nested deeper than 256 frames".into(),
        );
        say(
            self.unpaired_returns,
            "returns not timed: their entry was not seen (running at attach)".into(),
        );
        say(
            self.code_read_errors,
            "probe hits whose code object could not be read".into(),
        );
        say(
            self.events_lost,
            "events lost: ring buffer full (raise --buffer-size)".into(),
        );
        say(
            self.gc_unpaired,
            "GC pauses not timed: their start was not seen (collecting at attach)".into(),
        );
        say(
            self.exits_unseen,
            "calls not timed: they ended without a return probe (exception exits on 3.15+)".into(),
        );
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "functions_full": self.functions_full,
            "function_table_size": self.table_size,
            "hist_full": self.hist_full,
            "threads_full": self.threads_full,
            "too_deep": self.too_deep,
            "unpaired_returns": self.unpaired_returns,
            "code_read_errors": self.code_read_errors,
            "events_lost": self.events_lost,
            "gc_unpaired": self.gc_unpaired,
            "exits_unseen": self.exits_unseen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_lost_says_nothing() {
        assert!(Losses::default().lines().is_empty());
    }

    #[test]
    fn every_loss_is_named() {
        let l = Losses {
            functions_full: 3,
            table_size: 10,
            events_lost: 7,
            ..Default::default()
        };
        let lines = l.lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("3 calls not counted"), "{lines:?}");
        assert!(lines[1].starts_with("7 events lost"), "{lines:?}");
    }
}
