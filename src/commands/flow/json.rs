//! pyflow as JSON lines: one object per event, then one summary object.

use serde_json::{Value, json};

use crate::commands::flow::{EventKind, FlowEvent, FlowSummary};
use crate::output::Window;

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

pub fn summary(s: &FlowSummary, _: &Window) -> Value {
    json!({
        "event": "summary",
        "events": s.events,
        "delivered": s.delivered,
        "records": if s.calls_mode { "calls" } else { "events" },
        "lost": crate::output::json::losses(&s.losses),
        "notes": s.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::flow::testing::flow_sample as sample;
    use crate::output::Output;
    use crate::output::json::Documents;
    use crate::output::testing::Shared;

    #[test]
    fn one_object_per_event_then_a_summary() {
        let buf = Shared::default();
        let mut j = Documents::new(Box::new(buf.clone()), event_json, summary);
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
