//! The text format's shared part: pages written and losses worded (each command's tables and
//! lines are its own text.rs).

use std::io::{self, Write};

use super::{Never, Output, Window};
use crate::trace::losses::{Loss, Losses, Lost};

/// A report's table: with --interval, after a blank line and the time of day its window ends.
pub fn write_table(w: &mut impl Write, window: &Window, table: &str) -> io::Result<()> {
    if let Some(c) = &window.clock {
        writeln!(w, "\n{c}")?;
    }
    w.write_all(table.as_bytes())
}

/// A command's text that is one page per report (a table, a tree), made by the command's own
/// function; with --interval each page is headed by the time of day its window ended.
pub struct Pages<R> {
    w: Box<dyn Write>,
    page: Box<dyn Fn(&R) -> String>,
}

impl<R> Pages<R> {
    pub fn new(w: Box<dyn Write>, page: impl Fn(&R) -> String + 'static) -> Pages<R> {
        Pages {
            w,
            page: Box::new(page),
        }
    }
}

impl<R> Output<Never, R> for Pages<R> {
    fn report(&mut self, r: &R, window: &Window) -> io::Result<()> {
        write_table(&mut self.w, window, &(self.page)(r))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// What a loss means, in words.
fn what(l: &Lost) -> String {
    let limit = l.limit.unwrap_or(0);
    match l.loss {
        Loss::FunctionsFull => format!(
            "calls not counted: function table full ({limit} functions; raise --max-functions)"
        ),
        Loss::HistFull => "latency samples dropped: histogram table full".into(),
        Loss::ThreadsFull => "calls not timed or shown: too many threads at once".into(),
        Loss::TooDeep => format!("calls nested deeper than {limit} frames: not timed or shown"),
        Loss::ImportThreadsFull => "imports not shown: too many threads at once".into(),
        Loss::ImportsTooDeep => format!("imports not shown: nested deeper than {limit}"),
        Loss::UnpairedReturns => {
            "returns not timed or shown: their call was already running when tracing began".into()
        }
        Loss::GcUnpaired => {
            "GC pauses not timed: their start was not seen (collecting at attach)".into()
        }
        Loss::UnpairedDones => "imports not shown: already running when tracing started".into(),
        Loss::InProgress => "imports not shown: still running when tracing ended".into(),
        Loss::CodeReadErrors => "probe hits whose code object could not be read".into(),
        Loss::EventsLost => "events lost: ring buffer full (raise --buffer-size)".into(),
        Loss::CallsLost => "calls lost: ring buffer full (raise --buffer-size)".into(),
        Loss::ExitsUnseen => "calls whose return was not seen (exits by exception on 3.15; \
             nested past the kernel's 64 pending returns): counted, not timed"
            .into(),
        Loss::LinesFull => format!(
            "line executions not counted: line table full ({limit} lines; raise --max-lines)"
        ),
        Loss::FilesFull => "line executions not counted: file-name table full".into(),
        Loss::ReadErrors => "events lost: their name could not be read".into(),
        Loss::PathsTruncated => format!(
            "file paths longer than {limit} bytes: kept and matched by their last {limit} bytes"
        ),
        Loss::FunctionPathsTruncated => format!(
            "functions in files whose path is longer than {limit} bytes: the path kept by its end"
        ),
        Loss::SamplesFull => {
            format!("samples not counted: stack table full ({limit} stacks; raise --max-stacks)")
        }
        Loss::StacksTruncated => {
            format!("samples of stacks deeper than {limit} frames: the outermost frames left out")
        }
        Loss::StackReadErrors => {
            "samples whose frames could not all be read (a frame changing under the read, or \
             not in memory): the frames read are kept"
                .into()
        }
        Loss::IdlePassesMissed => format!(
            "--idle passes over the off-CPU threads not taken of the {limit} due: a pass took \
             longer than the sampling period, so idle threads were sampled at a lower rate than \
             asked (a lower --rate keeps up)"
        ),
    }
}

/// A line for every loss that happened; none when nothing was lost.
pub fn loss_lines(losses: &Losses) -> Vec<String> {
    losses
        .nonzero()
        .map(|l| format!("{} {}", l.count, what(l)))
        .collect()
}

/// The `WARNING:` lines that end a report.
pub fn warnings(losses: &Losses) -> String {
    loss_lines(losses)
        .into_iter()
        .map(|l| format!("WARNING: {l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_lost_says_nothing() {
        assert!(loss_lines(&Losses::default()).is_empty());
    }

    #[test]
    fn every_loss_is_named_with_its_limit() {
        let mut l = Losses::default();
        l.0.push(Lost {
            loss: Loss::FunctionsFull,
            count: 3,
            limit: Some(10),
        });
        l.set(Loss::EventsLost, 7);
        l.set(Loss::HistFull, 0);
        let lines = loss_lines(&l);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "3 calls not counted: function table full (10 functions; raise --max-functions)"
        );
        assert!(lines[1].starts_with("7 events lost"), "{lines:?}");
    }
}
