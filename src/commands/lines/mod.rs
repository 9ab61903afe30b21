//! pyprobe lines: executions per source line from CPython's line probe (bpf/lines.bpf.c),
//! counted in the kernel per file name and line, optionally only files matching --file.
mod json;
mod text;
mod tracer;

use std::collections::HashMap;

pub use tracer::LineCounter;

use crate::error::Result;
use crate::output::formats;
use crate::output::json::Documents;
use crate::output::text::Pages;
use crate::session::Report;
use crate::session::job::Job;
use crate::trace::glob::Glob;
use crate::trace::losses::Losses;

formats!(pub LinesFormat: Text, Json);

#[derive(Debug, Clone, Default)]
pub struct LineOptions {
    /// Count only lines of files matching one of these (none: every file).
    pub files: Vec<Glob>,
    pub max_lines: u32,
    /// Attach even where CPython's probe code would fail on a file name (`tools::check_file_names`).
    pub force: bool,
}

/// Executions of one source line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineStats {
    pub file: String,
    pub file_truncated: bool,
    pub line: u32,
    pub count: u64,
}

impl LineStats {
    /// `file:line`, marking a path whose beginning the kernel had to cut.
    pub fn label(&self) -> String {
        format!(
            "{}{}:{}",
            if self.file_truncated { "..." } else { "" },
            crate::escape::escape(&self.file),
            self.line
        )
    }
}

/// A reading of every counted line, plus what was lost.
#[derive(Debug, Clone, Default)]
pub struct LineReport {
    pub lines: Vec<LineStats>,
    pub losses: Losses,
}

impl Report for LineReport {
    fn since(&self, earlier: &LineReport) -> LineReport {
        let before: HashMap<(&str, bool, u32), u64> = earlier
            .lines
            .iter()
            .map(|l| ((l.file.as_str(), l.file_truncated, l.line), l.count))
            .collect();
        let lines = self
            .lines
            .iter()
            .map(|l| LineStats {
                count: l.count
                    - before
                        .get(&(l.file.as_str(), l.file_truncated, l.line))
                        .copied()
                        .unwrap_or(0)
                        .min(l.count),
                ..l.clone()
            })
            .filter(|l| l.count > 0)
            .collect();
        LineReport {
            lines,
            losses: self.losses.since(&earlier.losses),
        }
    }
}

impl LineReport {
    pub fn total(&self) -> u64 {
        self.lines.iter().map(|l| l.count).sum()
    }

    /// Lines by count, biggest first, then by file and line for stability; the first `top`.
    pub fn ordered(&self, top: Option<usize>) -> Vec<&LineStats> {
        let mut ls: Vec<&LineStats> = self.lines.iter().collect();
        ls.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.file.cmp(&b.file))
                .then_with(|| a.line.cmp(&b.line))
        });
        if let Some(n) = top {
            ls.truncate(n);
        }
        ls
    }
}

pub fn run(job: Job, opts: &LineOptions, top: Option<usize>) -> Result<()> {
    job.trace(
        "line executions",
        |target| LineCounter::attach(target, opts),
        |format, w| match format {
            LinesFormat::Json => Box::new(Documents::reports(w, move |r, _| json::report(r, top))),
            LinesFormat::Text => Box::new(Pages::new(w, move |r| text::table(r, top))),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn l(file: &str, line: u32, count: u64) -> LineStats {
        LineStats {
            file: file.into(),
            file_truncated: false,
            line,
            count,
        }
    }

    #[test]
    fn intervals_subtract_the_earlier_reading() {
        let before = LineReport {
            lines: vec![l("/a.py", 3, 10), l("/a.py", 4, 5)],
            ..Default::default()
        };
        let now = LineReport {
            lines: vec![l("/a.py", 3, 25), l("/a.py", 4, 5), l("/b.py", 1, 2)],
            ..Default::default()
        };
        let d = now.since(&before);
        assert_eq!(d.lines, vec![l("/a.py", 3, 15), l("/b.py", 1, 2)]);
        assert_eq!(d.total(), 17);
    }
}
