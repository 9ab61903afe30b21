//! pyflow's output formats behind one small trait: the text flow, JSON lines, a Chrome trace,
//! and flame graphs (folded stacks, SVG).
mod chrome;
mod folded;
mod jsonl;
mod text;

use std::io::{self, Write};

use crate::flow::{FlowEvent, FlowSummary};

pub use folded::Weight;

/// Receives every event in per-thread program order, then the session's summary.
pub trait FlowOutput {
    fn event(&mut self, ev: &FlowEvent) -> io::Result<()>;
    /// Makes what was written so far visible (streaming formats write through).
    fn flush(&mut self) -> io::Result<()>;
    fn finish(&mut self, summary: &FlowSummary) -> io::Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FlowFormat {
    /// One line per call and return, indented per thread
    #[default]
    Text,
    /// One JSON object per event (JSON lines), then a summary object
    Json,
    /// Chrome trace-event JSON for Perfetto UI or chrome://tracing
    Chrome,
    /// Folded stacks (flamegraph.pl / inferno input)
    Folded,
    /// A flame graph picture
    Svg,
}

/// The output for a format, writing to `w`; `title` names the traced process in pictures.
pub fn new_output(
    format: FlowFormat,
    weight: Weight,
    w: Box<dyn Write>,
    title: String,
) -> Box<dyn FlowOutput> {
    match format {
        FlowFormat::Text => Box::new(text::Text::new(w)),
        FlowFormat::Json => Box::new(jsonl::JsonLines::new(w)),
        FlowFormat::Chrome => Box::new(chrome::ChromeTrace::new(w)),
        FlowFormat::Folded => Box::new(folded::Folded::new(w, weight, None)),
        FlowFormat::Svg => Box::new(folded::Folded::new(w, weight, Some(title))),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::cell::RefCell;
    use std::io::{self, Write};
    use std::rc::Rc;

    use crate::flow::{EventKind, FlowEvent, Function};

    /// A writer whose bytes the test keeps.
    #[derive(Clone, Default)]
    pub struct Shared(pub Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        pub fn text(&self) -> String {
            String::from_utf8(self.0.borrow().clone()).unwrap()
        }
    }

    /// main(0..100us) calls fib(10..30us) which calls fib(15..20us), all in thread 7 of pid 7.
    pub fn sample() -> Vec<FlowEvent> {
        let f = |name: &str, line| {
            Rc::new(Function {
                id: line,
                file: "/w/app.py".into(),
                line,
                name: name.into(),
                ..Default::default()
            })
        };
        let (main, fib) = (f("main", 1), f("fib", 5));
        let ev = |kind, t: u64, depth, func: &Rc<Function>, dur: Option<u64>| FlowEvent {
            kind,
            time_ns: t * 1000,
            pid: 7,
            tid: 7,
            depth,
            function: func.clone(),
            duration_ns: dur.map(|d| d * 1000),
            unwound: false,
        };
        vec![
            ev(EventKind::Call, 0, 0, &main, None),
            ev(EventKind::Call, 10, 1, &fib, None),
            ev(EventKind::Call, 15, 2, &fib, None),
            ev(EventKind::Return, 20, 2, &fib, Some(5)),
            ev(EventKind::Return, 30, 1, &fib, Some(20)),
            ev(EventKind::Return, 100, 0, &main, Some(100)),
        ]
    }
}
