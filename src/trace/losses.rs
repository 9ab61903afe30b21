//! What the kernel side could not record: one set of named losses for every tool, read from
//! the one `struct loss_counters` (bpf/pyprobe.h) and worded in output/.
use crate::abi::limits::PATH_SCRATCH;
use crate::abi::types::LossCounters;

/// One kind of loss; its name is the counter's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Calls not counted or shown: the function table was full (limit: its size).
    FunctionsFull,
    /// Latency samples dropped: the histogram table was full.
    HistFull,
    /// Calls not timed or shown: the per-thread table was full.
    ThreadsFull,
    /// Calls nested deeper than the per-thread stack (limit: its depth).
    TooDeep,
    /// Imports not shown: the per-thread table was full.
    ImportThreadsFull,
    /// Imports nested deeper than the per-thread stack (limit: its depth).
    ImportsTooDeep,
    /// Returns whose entry was not seen: calls already running at attach.
    UnpairedReturns,
    /// GC pauses whose start was not seen: a collection under way at attach.
    GcUnpaired,
    /// Imports whose start was not seen: loads under way at attach.
    UnpairedDones,
    /// Imports started but not finished when tracing ended.
    InProgress,
    /// Probe hits whose code object could not be read.
    CodeReadErrors,
    /// Records the ring buffer had no room for.
    EventsLost,
    /// The same counter when each record is a whole call (pyflow --min-duration).
    CallsLost,
    /// Calls whose return never fired (3.15 exits by exception): counted, not timed.
    ExitsUnseen,
    /// Line executions not counted: the line table was full (limit: its size).
    LinesFull,
    /// Line executions not counted: the file-name table was full.
    FilesFull,
    /// Audit events whose name could not be read.
    ReadErrors,
    /// File names read from a path longer than the kernel reads whole: kept, and matched, by
    /// its end (limit: the bytes kept).
    PathsTruncated,
    /// The same counter where each is a function named from such a path.
    FunctionPathsTruncated,
    /// Samples not counted: the (thread, stack) table was full (limit: its size).
    SamplesFull,
    /// Samples whose stack was deeper than the kernel keeps (limit: its depth).
    StacksTruncated,
    /// Samples whose frame chain could not be read to its end.
    StackReadErrors,
    /// `--idle` passes over the off-CPU threads not taken at the rate asked: a pass over many
    /// threads took longer than the sampling period (limit: the passes due).
    IdlePassesMissed,
}

impl Loss {
    /// The counter's name, which is also its key in JSON output.
    pub fn key(self) -> &'static str {
        match self {
            Loss::FunctionsFull => "functions_full",
            Loss::HistFull => "hist_full",
            Loss::ThreadsFull | Loss::ImportThreadsFull => "threads_full",
            Loss::TooDeep | Loss::ImportsTooDeep => "too_deep",
            Loss::UnpairedReturns => "unpaired_returns",
            Loss::GcUnpaired => "gc_unpaired",
            Loss::UnpairedDones => "unpaired_dones",
            Loss::InProgress => "in_progress",
            Loss::CodeReadErrors => "code_read_errors",
            Loss::EventsLost | Loss::CallsLost => "events_lost",
            Loss::ExitsUnseen => "exits_unseen",
            Loss::LinesFull => "lines_full",
            Loss::FilesFull => "files_full",
            Loss::ReadErrors => "read_errors",
            Loss::PathsTruncated | Loss::FunctionPathsTruncated => "paths_truncated",
            Loss::SamplesFull => "samples_full",
            Loss::StacksTruncated => "stacks_truncated",
            Loss::StackReadErrors => "stack_read_errors",
            Loss::IdlePassesMissed => "idle_passes_missed",
        }
    }

    /// The key of the limit it ran into, where JSON output names it.
    pub fn limit_key(self) -> Option<&'static str> {
        match self {
            Loss::FunctionsFull => Some("function_table_size"),
            Loss::LinesFull => Some("line_table_size"),
            Loss::SamplesFull => Some("stack_table_size"),
            Loss::StacksTruncated => Some("max_stack_depth"),
            _ => None,
        }
    }

    /// The kernel's count of this loss; None for losses userspace counts itself.
    fn counted_in(self, c: &LossCounters) -> Option<u64> {
        Some(match self {
            Loss::FunctionsFull => c.functions_full,
            Loss::HistFull => c.hist_full,
            Loss::ThreadsFull | Loss::ImportThreadsFull => c.threads_full,
            Loss::TooDeep | Loss::ImportsTooDeep => c.too_deep,
            Loss::UnpairedReturns => c.unpaired_returns,
            Loss::GcUnpaired => c.gc_unpaired,
            Loss::UnpairedDones => c.unpaired_dones,
            Loss::CodeReadErrors => c.code_read_errors,
            Loss::EventsLost | Loss::CallsLost => c.events_lost,
            Loss::ExitsUnseen => c.exits_unseen,
            Loss::LinesFull => c.lines_full,
            Loss::FilesFull => c.files_full,
            Loss::ReadErrors => c.read_errors,
            Loss::PathsTruncated | Loss::FunctionPathsTruncated => c.paths_truncated,
            Loss::SamplesFull => c.samples_full,
            Loss::StacksTruncated => c.stacks_truncated,
            Loss::StackReadErrors => c.stack_read_errors,
            Loss::InProgress | Loss::IdlePassesMissed => return None,
        })
    }
}

/// One loss a tool can have: how many so far, and the limit it ran into where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub loss: Loss,
    pub count: u64,
    pub limit: Option<u64>,
}

/// Every loss a tool can have, zero or not, in the tool's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Losses(pub Vec<Lost>);

/// The losses of a function tracer that pairs calls with their returns on per-thread stacks
/// `depth` deep (count's and flow's), after its own.
pub fn of_call_pairing(depth: usize) -> [(Loss, Option<u64>); 6] {
    [
        (Loss::ThreadsFull, None),
        (Loss::TooDeep, Some(depth as u64)),
        (Loss::UnpairedReturns, None),
        (Loss::CodeReadErrors, None),
        (Loss::ExitsUnseen, None),
        (Loss::FunctionPathsTruncated, Some(PATH_SCRATCH as u64 - 1)),
    ]
}

impl Losses {
    /// The losses a tool declares (with their limits), counted from the kernel's counters.
    pub fn read(counters: &LossCounters, kinds: &[(Loss, Option<u64>)]) -> Losses {
        Losses(
            kinds
                .iter()
                .map(|&(loss, limit)| Lost {
                    loss,
                    count: loss.counted_in(counters).unwrap_or(0),
                    limit,
                })
                .collect(),
        )
    }

    pub fn get(&self, loss: Loss) -> u64 {
        self.0
            .iter()
            .find(|l| l.loss == loss)
            .map_or(0, |l| l.count)
    }

    /// Sets a loss userspace counts itself.
    pub fn set(&mut self, loss: Loss, count: u64) {
        match self.0.iter_mut().find(|l| l.loss == loss) {
            Some(l) => l.count = count,
            None => self.0.push(Lost {
                loss,
                count,
                limit: None,
            }),
        }
    }

    /// Sets a loss userspace counts itself, with the limit it ran into.
    pub fn set_limited(&mut self, loss: Loss, count: u64, limit: u64) {
        self.set(loss, count);
        if let Some(l) = self.0.iter_mut().find(|l| l.loss == loss) {
            l.limit = Some(limit);
        }
    }

    /// Adds what userspace counted to a loss the kernel counts too (keeping its limit).
    pub fn add(&mut self, loss: Loss, count: u64) {
        match self.0.iter_mut().find(|l| l.loss == loss) {
            Some(l) => l.count += count,
            None => self.set(loss, count),
        }
    }

    /// The losses since an earlier reading (for --interval windows).
    pub fn since(&self, earlier: &Losses) -> Losses {
        Losses(
            self.0
                .iter()
                .map(|l| Lost {
                    count: l.count.saturating_sub(earlier.get(l.loss)),
                    ..*l
                })
                .collect(),
        )
    }

    /// The losses that happened.
    pub fn nonzero(&self) -> impl Iterator<Item = &Lost> {
        self.0.iter().filter(|l| l.count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_reads_the_losses_it_declares() {
        let c = LossCounters {
            functions_full: 3,
            events_lost: 7,
            gc_unpaired: 9,
            ..Default::default()
        };
        let l = Losses::read(
            &c,
            &[(Loss::FunctionsFull, Some(10)), (Loss::EventsLost, None)],
        );
        assert_eq!(l.get(Loss::FunctionsFull), 3);
        assert_eq!(l.get(Loss::EventsLost), 7);
        assert_eq!(l.get(Loss::GcUnpaired), 0, "not declared: not read");
        assert_eq!(l.nonzero().count(), 2);
        let later = Losses::read(
            &LossCounters {
                functions_full: 5,
                events_lost: 7,
                ..Default::default()
            },
            &[(Loss::FunctionsFull, Some(10)), (Loss::EventsLost, None)],
        );
        let d = later.since(&l);
        assert_eq!(
            (d.get(Loss::FunctionsFull), d.get(Loss::EventsLost)),
            (2, 0)
        );
    }

    #[test]
    fn userspace_counts_add_to_the_kernels() {
        let mut l = Losses::read(
            &LossCounters {
                stacks_truncated: 4,
                ..Default::default()
            },
            &[(Loss::StacksTruncated, Some(128))],
        );
        l.add(Loss::StacksTruncated, 3);
        l.add(Loss::StackReadErrors, 2);
        assert_eq!(l.get(Loss::StacksTruncated), 7);
        assert_eq!(l.0[0].limit, Some(128), "the limit is kept");
        assert_eq!(l.get(Loss::StackReadErrors), 2);
    }
}
