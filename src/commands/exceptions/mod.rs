//! pyprobe exceptions: every exception that reaches Python code, counted in the kernel by type,
//! raise site, the function it stopped in and how many frames it passed (bpf/exceptions.bpf.c).
mod json;
mod text;
mod tracer;

use std::collections::BTreeMap;

pub use tracer::ExceptionTracer;

use crate::error::Result;
use crate::output::formats;
use crate::output::json::Documents;
use crate::session::Report;
use crate::session::job::Job;
use crate::trace::losses::Losses;

formats!(pub ExceptionsFormat: Text, Json);

/// What exceptions are counted under, with names read from the target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExceptionKey {
    /// The type's `tp_name` (`KeyError`, `mymod.MyError`).
    pub type_name: String,
    /// The function of the first Python frame the exception passed (raised there, or by C code
    /// it called), its file and line.
    pub function: String,
    pub file: String,
    pub line: i32,
    /// The function of the last frame it passed: where it was caught, or the outermost one.
    pub end_function: String,
    /// Python frames it passed, the raising one included.
    pub frames: u32,
    /// One of them was its thread's outermost Python frame.
    pub reached_top: bool,
}

/// One exception as it finished (`--stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionEvent {
    pub key: ExceptionKey,
    pub tid: u32,
    /// Since the session began.
    pub offset_ns: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ExceptionReport {
    pub counts: BTreeMap<ExceptionKey, u64>,
    /// PyTraceBack_Here calls: the frames all exceptions passed.
    pub frames_passed: u64,
    pub losses: Losses,
}

impl Report for ExceptionReport {
    fn since(&self, earlier: &ExceptionReport) -> ExceptionReport {
        let mut counts = BTreeMap::new();
        for (k, &n) in &self.counts {
            let d = n.saturating_sub(earlier.counts.get(k).copied().unwrap_or(0));
            if d > 0 {
                counts.insert(k.clone(), d);
            }
        }
        ExceptionReport {
            counts,
            frames_passed: self.frames_passed.saturating_sub(earlier.frames_passed),
            losses: self.losses.since(&earlier.losses),
        }
    }
}

impl ExceptionReport {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Rows hottest first (then by type and place, for a stable order).
    pub fn rows(&self) -> Vec<(&ExceptionKey, u64)> {
        let mut rows: Vec<_> = self.counts.iter().map(|(k, &n)| (k, n)).collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        rows
    }
}

/// `--filter`: an exception matches a pattern naming its type (`KeyError`, or with its module)
/// or the function it was raised in (qualified, or its last part).
pub fn matches(filters: &[String], key: &ExceptionKey) -> bool {
    let last = |s: &str| s.rsplit('.').next().unwrap_or(s).to_string();
    filters.is_empty()
        || filters.iter().any(|f| {
            *f == key.type_name
                || *f == last(&key.type_name)
                || *f == key.function
                || *f == last(&key.function)
        })
}

#[derive(Debug, Clone, Default)]
pub struct ExceptionOptions {
    pub filters: Vec<String>,
    pub stream: bool,
}

pub fn run(job: Job, opts: &ExceptionOptions) -> Result<()> {
    job.trace(
        "exceptions",
        |target| ExceptionTracer::attach(target, opts),
        |format, w| match format {
            ExceptionsFormat::Json => Box::new(Documents::new(w, json::event, json::report)),
            ExceptionsFormat::Text => Box::new(text::Table::new(w, opts.stream)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ty: &str, f: &str, frames: u32) -> ExceptionKey {
        ExceptionKey {
            type_name: ty.into(),
            function: f.into(),
            file: "w.py".into(),
            line: 3,
            end_function: f.into(),
            frames,
            reached_top: false,
        }
    }

    #[test]
    fn windows_subtract_and_rows_are_hottest_first() {
        let mut a = ExceptionReport::default();
        a.counts.insert(key("KeyError", "get", 1), 40);
        a.counts.insert(key("ValueError", "Parser.parse", 3), 50);
        a.frames_passed = 190;
        let mut b = a.clone();
        *b.counts.get_mut(&key("KeyError", "get", 1)).unwrap() += 100;
        b.frames_passed += 100;
        let d = b.since(&a);
        assert_eq!(d.total(), 100);
        assert_eq!(d.frames_passed, 100);
        assert_eq!(d.counts.len(), 1);
        let rows = b.rows();
        assert_eq!(rows[0].1, 140);
        assert_eq!(rows[1].0.type_name, "ValueError");
    }

    #[test]
    fn filters_name_a_type_or_a_function() {
        let k = key("mymod.ParseError", "Parser.parse", 1);
        assert!(matches(&[], &k));
        assert!(matches(&["ParseError".into()], &k));
        assert!(matches(&["mymod.ParseError".into()], &k));
        assert!(matches(&["parse".into()], &k));
        assert!(matches(&["Parser.parse".into()], &k));
        assert!(!matches(&["KeyError".into(), "Parser".into()], &k));
    }
}
