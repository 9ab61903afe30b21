//! pyflow as JSON lines: one object per event, then one summary object.
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::commands::flow::{EventKind, FlowEvent, FlowSummary};
use crate::output::{Output, Window};

pub struct JsonLines {
    w: Box<dyn Write>,
}

impl JsonLines {
    pub fn new(w: Box<dyn Write>) -> JsonLines {
        JsonLines { w }
    }
}

pub fn event_json(ev: &FlowEvent) -> Value {
    let f = &ev.function;
    let mut v = json!({
        "event": if ev.kind == EventKind::Call { "call" } else { "return" },
        "time_ns": ev.time_ns,
        "pid": ev.pid,
        "tid": ev.tid,
        "depth": ev.depth,
        "file": f.file,
        "line": f.line,
        "function": f.name,
    });
    if f.name_truncated {
        v["name_truncated"] = json!(true);
    }
    if f.file_truncated {
        v["file_truncated"] = json!(true);
    }
    if let Some(d) = ev.duration_ns {
        v["duration_ns"] = json!(d);
    }
    if ev.unwound {
        v["unwound"] = json!(true);
    }
    v
}

impl Output<FlowEvent, FlowSummary> for JsonLines {
    fn event(&mut self, ev: &FlowEvent) -> io::Result<()> {
        writeln!(self.w, "{}", event_json(ev))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    fn report(&mut self, s: &FlowSummary, _: &Window) -> io::Result<()> {
        let v = json!({
            "event": "summary",
            "events": s.events,
            "delivered": s.delivered,
            "records": if s.calls_mode { "calls" } else { "events" },
            "lost": crate::output::json::losses(&s.losses),
            "notes": s.notes,
        });
        writeln!(self.w, "{v}")?;
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::flow::testing::flow_sample as sample;
    use crate::output::testing::Shared;

    #[test]
    fn one_object_per_event_then_a_summary() {
        let buf = Shared::default();
        let mut j = JsonLines::new(Box::new(buf.clone()));
        for e in sample() {
            j.event(&e).unwrap();
        }
        j.report(
            &FlowSummary {
                events: 6,
                ..Default::default()
            },
            &Window::default(),
        )
        .unwrap();
        let lines: Vec<Value> = buf
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[1]["event"], "call");
        assert_eq!(lines[1]["function"], "fib");
        assert_eq!(lines[1]["depth"], 1);
        assert_eq!(lines[4]["duration_ns"], 20_000);
        assert_eq!(lines[6]["event"], "summary");
        assert_eq!(lines[6]["events"], 6);
    }
}
