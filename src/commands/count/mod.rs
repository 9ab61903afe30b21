//! pycount: calls per function, exact, counted in the kernel (bpf/count.bpf.c); with
//! --latency, each call timed from entry to return and bucketed there.
mod json;
mod text;
mod tracer;

use std::collections::HashMap;

pub use tracer::CountTracer;

use crate::error::Result;
use crate::output::json::Documents;
use crate::output::text::Pages;
use crate::output::{Never, Output, formats};
use crate::session::job::Job;
use crate::session::{Report, Session};
use crate::source::{self, SourceChoice};
use crate::trace::calls::FunctionStats;
use crate::trace::filter::Pattern;
use crate::trace::losses::Losses;

formats!(pub CountFormat: Text, Json);

#[derive(Debug, Clone, Default)]
pub struct CountOptions {
    pub filters: Vec<Pattern>,
    pub latency: bool,
    /// Only this thread's calls (its kernel thread id), filtered in the kernel.
    pub tid: Option<u32>,
    pub max_functions: u32,
    /// Switch on a running 3.14+ process's perf trampoline if it is off.
    pub activate_trampoline: bool,
    /// Attach even where CPython's probe code would fail on a file name (`tools::check_file_names`).
    pub force: bool,
    /// Follow the processes the target forks (`--subprocesses`): each is counted apart, from
    /// its first instruction, and every row carries its PID.
    pub subprocesses: bool,
    /// Allocate the hash maps' entries as they are used rather than at load (the agent keeps
    /// one tracer per process for its whole life; a session pays for speed at first sight).
    pub lean_maps: bool,
    /// What counts a filtered pycount's calls (`--source`).
    pub source: SourceChoice,
}

/// How the table is ordered and cut.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountView {
    pub sort: SortKey,
    pub top: Option<usize>,
}

/// The same keys as top's and record's where they mean the same (own, total, name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SortKey {
    /// Calls (the default without --latency)
    #[default]
    Count,
    /// --latency: time in the function itself, its callees' time taken out (the default with
    /// --latency)
    Own,
    /// --latency: time from entry to return, callees included
    Total,
    /// --latency: total time per timed call
    Avg,
    /// The function's name (then file and line)
    Name,
}

impl SortKey {
    /// The order when none is given: by own time with --latency, where the time is spent
    /// (total time puts every handler's callers, `<module>` and `main` first, which answers
    /// nothing); by calls otherwise.
    pub fn default_for(latency: bool) -> SortKey {
        if latency {
            SortKey::Own
        } else {
            SortKey::Count
        }
    }
}

/// A reading of every matched function, plus what was lost.
#[derive(Debug, Clone, Default)]
pub struct CallReport {
    pub functions: Vec<FunctionStats>,
    pub losses: Losses,
    pub latency: bool,
    /// Rows carry their process (`--subprocesses`).
    pub per_process: bool,
    /// What the report cannot show on this target (calls its source does not see).
    pub notes: Vec<String>,
}

impl Report for CallReport {
    fn since(&self, earlier: &CallReport) -> CallReport {
        let before: HashMap<u32, &FunctionStats> = earlier
            .functions
            .iter()
            .map(|f| (f.function.id, f))
            .collect();
        let functions = self
            .functions
            .iter()
            .map(|f| match before.get(&f.function.id) {
                Some(e) => f.since(e),
                None => f.clone(),
            })
            .filter(|f| f.count > 0)
            .collect();
        CallReport {
            functions,
            losses: self.losses.since(&earlier.losses),
            latency: self.latency,
            per_process: self.per_process,
            notes: self.notes.clone(),
        }
    }
}

impl CallReport {
    pub fn total_calls(&self) -> u64 {
        self.functions.iter().map(|f| f.count).sum()
    }

    /// The functions in report order: by the sort key, biggest first, then by file, line and
    /// name for stability; the first `top`.
    pub fn ordered(&self, view: CountView) -> Vec<&FunctionStats> {
        let mut fs: Vec<&FunctionStats> = self.functions.iter().collect();
        let key = |f: &FunctionStats| match view.sort {
            SortKey::Count => f.count,
            SortKey::Own => f.own_ns,
            SortKey::Total => f.total_ns,
            SortKey::Avg => f.avg_ns(),
            SortKey::Name => 0,
        };
        let by_name = view.sort == SortKey::Name;
        fs.sort_by(|a, b| {
            key(b)
                .cmp(&key(a))
                .then_with(|| {
                    if by_name {
                        a.function.name.cmp(&b.function.name)
                    } else {
                        std::cmp::Ordering::Equal
                    }
                })
                .then_with(|| a.function.file.cmp(&b.function.file))
                .then_with(|| a.function.line.cmp(&b.function.line))
                .then_with(|| a.function.name.cmp(&b.function.name))
                .then_with(|| a.pid.cmp(&b.pid))
        });
        if let Some(n) = view.top {
            fs.truncate(n);
        }
        fs
    }
}

pub fn run(job: Job, opts: &CountOptions, view: CountView) -> Result<()> {
    let w = job.dest.open()?;
    let mut out: Box<dyn Output<Never, CallReport>> = match job.dest.format_of::<CountFormat>()? {
        CountFormat::Json => Box::new(Documents::reports(w, move |r, _| json::report(r, view))),
        CountFormat::Text => Box::new(Pages::new(w, move |r| text::table(r, view))),
    };
    let mut session = Session::open(&job.spec, true)?;
    if opts.activate_trampoline {
        source::activate_trampoline(&session.target)?;
    }
    let mut tracer = CountTracer::attach(&session.target, opts)?;
    let mut what = String::from(if opts.latency {
        "calls and latencies"
    } else {
        "calls"
    });
    let notes: Vec<String> = tracer
        .source_note()
        .into_iter()
        .chain(
            tracer
                .source
                .as_ref()
                .and_then(|s| s.banner_note())
                .map(str::to_string),
        )
        .collect();
    if !notes.is_empty() {
        what.push_str(&format!(" ({})", notes.join("; ")));
    }
    session.run(&mut tracer, out.as_mut(), &what, job.schedule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::function::Function;

    pub fn stats(name: &str, line: i32, count: u64, total: u64) -> FunctionStats {
        FunctionStats {
            function: Function {
                id: line as u32,
                file: "/w/app.py".into(),
                line,
                name: name.into(),
                ..Default::default()
            },
            count,
            timed: count,
            total_ns: total,
            ..Default::default()
        }
    }

    fn report(functions: Vec<FunctionStats>) -> CallReport {
        CallReport {
            functions,
            ..Default::default()
        }
    }

    #[test]
    fn sorts_and_cuts() {
        let r = report(vec![
            stats("a", 1, 5, 100),
            stats("b", 2, 50, 10),
            stats("c", 3, 5, 1000),
        ]);
        let names = |r: &CallReport, sort, top| -> Vec<String> {
            r.ordered(CountView { sort, top })
                .iter()
                .map(|f| f.function.name.clone())
                .collect()
        };
        assert_eq!(names(&r, SortKey::Count, None), ["b", "a", "c"]);
        assert_eq!(names(&r, SortKey::Total, Some(2)), ["c", "a"]);
        assert_eq!(names(&r, SortKey::Avg, None), ["c", "a", "b"]);
        assert_eq!(names(&r, SortKey::Name, None), ["a", "b", "c"]);
        let mut own = r.clone();
        own.functions[1].own_ns = 7;
        own.functions[2].own_ns = 3;
        assert_eq!(names(&own, SortKey::Own, None), ["b", "c", "a"]);
        assert_eq!(SortKey::default_for(true), SortKey::Own);
        assert_eq!(SortKey::default_for(false), SortKey::Count);
    }

    #[test]
    fn an_interval_counts_only_its_own_calls() {
        let before = report(vec![stats("a", 1, 5, 100), stats("b", 2, 7, 10)]);
        let now = report(vec![
            stats("a", 1, 9, 180),
            stats("b", 2, 7, 10),
            stats("c", 3, 1, 1),
        ]);
        let d = now.since(&before);
        let got: Vec<(String, u64, u64)> = d
            .functions
            .iter()
            .map(|f| (f.function.name.clone(), f.count, f.total_ns))
            .collect();
        assert_eq!(got, [("a".into(), 4, 80), ("c".into(), 1, 1)]);
        assert_eq!(d.total_calls(), 5);
    }
}
