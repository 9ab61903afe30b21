//! pyflow: every call and return of the target as it happens, paired and filtered per thread in
//! the kernel (bpf/flow.bpf.c) and streamed through a ring buffer.
mod chrome;
mod folded;
mod json;
#[cfg(test)]
mod testing;
mod text;
mod tracer;
mod trees;

use std::rc::Rc;
use std::time::Duration;

pub use folded::Weight;
pub use tracer::FlowTracer;

use crate::error::Result;
use crate::output::json::Documents;
use crate::output::{Output, formats};
use crate::session::job::Job;
use crate::session::{Session, reported_once};
use crate::source;
use crate::trace::filter::Pattern;
use crate::trace::function::Function;
use crate::trace::losses::{Loss, Losses};

formats!(pub FlowFormat: Text, Json, Chrome, Folded, Svg);

/// What pyflow shows, validated; every choice is made in the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowOptions {
    pub filters: Vec<Pattern>,
    pub subtree: bool,
    /// Shown calls nest at most this deep (1: only the outermost).
    pub max_depth: Option<u32>,
    pub tid: Option<u32>,
    pub min_duration: Option<Duration>,
    /// Ring buffer size in bytes: a power of two, a multiple of the page size.
    pub buffer_size: u32,
    pub max_functions: u32,
    /// What flame graphs' widths measure.
    pub weight: Weight,
    /// Switch on a running 3.14+ process's perf trampoline if it is off.
    pub activate_trampoline: bool,
    /// Attach even where CPython's probe code would fail on a file name (`tools::check_file_names`).
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Call,
    Return,
}

/// One line of the flow: a call or a return, in its thread's program order.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowEvent {
    pub kind: EventKind,
    /// Since tracing began.
    pub time_ns: u64,
    pub pid: u32,
    pub tid: u32,
    /// Shown calls around this one in its thread (0: outermost).
    pub depth: u32,
    pub function: Rc<Function>,
    /// On returns: how long the call took.
    pub duration_ns: Option<u64>,
    /// A return inferred for a frame that exited by exception without firing its probe (3.15).
    pub unwound: bool,
}

/// What a session showed and what it could not.
#[derive(Debug, Clone, Default)]
pub struct FlowSummary {
    /// Records delivered by the kernel: events, or with --min-duration, calls.
    pub delivered: u64,
    /// Lines of flow written (a call and its return are two).
    pub events: u64,
    pub losses: Losses,
    /// Records are whole calls (--min-duration), so a lost one is a call, not an event.
    pub calls_mode: bool,
    /// What the flow cannot show on this target (calls its source does not see).
    pub notes: Vec<String>,
}

reported_once!(FlowSummary);

pub fn run(job: Job, opts: &FlowOptions) -> Result<()> {
    let w = job.dest.open()?;
    let mut session = Session::open(&job.spec, true)?;
    let title = format!(
        "pyflow: PID {} ({})",
        session.target.pid,
        crate::escape::escape(&session.target.exe)
    );
    let mut out: Box<dyn Output<FlowEvent, FlowSummary>> =
        match job.dest.format_of::<FlowFormat>()? {
            FlowFormat::Json => Box::new(Documents::new(w, json::event_json, json::summary)),
            FlowFormat::Chrome => Box::new(chrome::ChromeTrace::new(w)),
            FlowFormat::Folded => Box::new(folded::Folded::new(w, opts.weight, None)),
            FlowFormat::Svg => Box::new(folded::Folded::new(w, opts.weight, Some(title))),
            FlowFormat::Text => Box::new(text::Text::new(w)),
        };
    if opts.activate_trampoline {
        source::activate_trampoline(&session.target)?;
    }
    let mut tracer = FlowTracer::attach(&session.target, opts)?;
    let mut what = String::from("calls and returns");
    if let Some(note) = tracer.source.banner_note() {
        what.push_str(&format!(" ({note})"));
    }
    session.run(&mut tracer, out.as_mut(), &what, job.schedule)?;
    let s = tracer.read_summary();
    let (lost, records) = if s.calls_mode {
        (Loss::CallsLost, "calls")
    } else {
        (Loss::EventsLost, "events")
    };
    eprintln!(
        "pyflow: {} events shown; {} {records} lost",
        s.events,
        s.losses.get(lost)
    );
    // Diagnostics go to stderr in every format (JSON also holds them as data): the trace on
    // standard output holds only calls.
    for l in s
        .notes
        .iter()
        .cloned()
        .chain(crate::output::text::loss_lines(&s.losses))
    {
        eprintln!("pyflow: WARNING: {l}");
    }
    Ok(())
}
