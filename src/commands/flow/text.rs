//! pyflow as text: one line per call (`->`) and return (`<-`), indented by depth per thread.
use std::io::{self, Write};

use crate::commands::flow::{EventKind, FlowEvent, FlowSummary};
use crate::output::{Output, Window, duration};

pub struct Text {
    w: Box<dyn Write>,
    header: bool,
}

impl Text {
    pub fn new(w: Box<dyn Write>) -> Text {
        Text { w, header: false }
    }
}

/// One event as a line (without the newline).
pub fn line(ev: &FlowEvent) -> String {
    let indent = "  ".repeat(ev.depth as usize);
    let (arrow, tail) = match ev.kind {
        EventKind::Call => ("->", String::new()),
        EventKind::Return => (
            "<-",
            format!(
                " ({}{})",
                duration(ev.duration_ns.unwrap_or(0)),
                if ev.unwound {
                    ", its return unseen"
                } else {
                    ""
                }
            ),
        ),
    };
    format!(
        "{:>12.3} {:>7} {:>7}  {indent}{arrow} {}{tail}",
        ev.time_ns as f64 / 1e3,
        ev.pid,
        ev.tid,
        ev.function.label()
    )
}

impl Output<FlowEvent, FlowSummary> for Text {
    fn event(&mut self, ev: &FlowEvent) -> io::Result<()> {
        if !self.header {
            writeln!(
                self.w,
                "{:>12} {:>7} {:>7}  CALLS",
                "TIME(us)", "PID", "TID"
            )?;
            self.header = true;
        }
        writeln!(self.w, "{}", line(ev))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// The trace holds calls only: its warnings are diagnostics, which pyflow writes to
    /// stderr (`flow::run`), so that a filter or a script reading the trace never meets them.
    fn report(&mut self, _: &FlowSummary, _: &Window) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::flow::testing::flow_sample as sample;
    use crate::output::testing::Shared;

    #[test]
    fn indents_by_depth_and_times_returns() {
        let buf = Shared::default();
        let mut t = Text::new(Box::new(buf.clone()));
        for e in sample() {
            t.event(&e).unwrap();
        }
        t.report(&FlowSummary::default(), &Window::default())
            .unwrap();
        assert_eq!(
            buf.text(),
            "    TIME(us)     PID     TID  CALLS
       0.000       7       7  -> /w/app.py:1 main
      10.000       7       7    -> /w/app.py:5 fib
      15.000       7       7      -> /w/app.py:5 fib
      20.000       7       7      <- /w/app.py:5 fib (5.0us)
      30.000       7       7    <- /w/app.py:5 fib (20.0us)
     100.000       7       7  <- /w/app.py:1 main (100.0us)
"
        );
    }

    #[test]
    fn notes_stay_out_of_the_trace() {
        let buf = Shared::default();
        let mut t = Text::new(Box::new(buf.clone()));
        let summary = FlowSummary {
            notes: vec!["--filter m.f matched no function: ...".into()],
            ..Default::default()
        };
        t.report(&summary, &Window::default()).unwrap();
        assert_eq!(buf.text(), "");
    }
}
