//! pyflow as a Chrome trace (trace-event JSON): one track per thread, each call a complete
//! ("X") event nested in its caller's, for Perfetto UI and chrome://tracing.
use std::collections::BTreeMap;
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::commands::flow::{EventKind, FlowEvent, FlowSummary};
use crate::output::{Output, Window};

/// Streams each call out as it completes, so a long trace needs no memory per call.
pub struct ChromeTrace {
    w: Box<dyn Write>,
    /// Trace events written so far (the array needs commas between them).
    written: u64,
    /// Calls still running, per (pid, tid), to close at the end of the trace.
    open: BTreeMap<(u32, u32), Vec<FlowEvent>>,
    last_ns: u64,
}

impl ChromeTrace {
    pub fn new(w: Box<dyn Write>) -> ChromeTrace {
        ChromeTrace {
            w,
            written: 0,
            open: BTreeMap::new(),
            last_ns: 0,
        }
    }
}

/// Microseconds, the trace format's unit, keeping nanoseconds as the fraction.
fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn complete(ev: &FlowEvent, start_ns: u64, dur_ns: u64, unfinished: bool) -> Value {
    let mut args = json!({
        "file": ev.function.file,
        "line": ev.function.line,
        "depth": ev.depth,
    });
    if unfinished {
        args["unfinished"] = json!(true);
    }
    json!({
        "name": ev.function.name,
        "cat": "python",
        "ph": "X",
        "ts": us(start_ns),
        "dur": us(dur_ns),
        "pid": ev.pid,
        "tid": ev.tid,
        "args": args,
    })
}

impl ChromeTrace {
    fn write(&mut self, v: &Value) -> io::Result<()> {
        let sep = if self.written == 0 {
            "{\"traceEvents\":[\n"
        } else {
            ",\n"
        };
        self.w.write_all(sep.as_bytes())?;
        serde_json::to_writer(&mut self.w, v)?;
        self.written += 1;
        Ok(())
    }
}

impl Output<FlowEvent, FlowSummary> for ChromeTrace {
    fn event(&mut self, ev: &FlowEvent) -> io::Result<()> {
        self.last_ns = self.last_ns.max(ev.time_ns);
        let open = self.open.entry((ev.pid, ev.tid)).or_default();
        open.truncate(ev.depth as usize);
        match ev.kind {
            EventKind::Call => open.push(ev.clone()),
            // The return carries the duration: the call is whole even if its entry was lost.
            EventKind::Return => {
                let dur = ev.duration_ns.unwrap_or(0);
                self.write(&complete(ev, ev.time_ns.saturating_sub(dur), dur, false))?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn report(&mut self, s: &FlowSummary, _: &Window) -> io::Result<()> {
        for ((pid, tid), open) in std::mem::take(&mut self.open) {
            for ev in &open {
                let dur = self.last_ns.saturating_sub(ev.time_ns);
                self.write(&complete(ev, ev.time_ns, dur, true))?;
            }
            let name = if pid == tid {
                format!("main thread {tid}")
            } else {
                format!("thread {tid}")
            };
            self.write(&json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}))?;
        }
        if self.written == 0 {
            self.w.write_all(b"{\"traceEvents\":[")?;
        }
        let other = json!({
            "tool": "pyflow",
            "events": s.events,
            "lost": crate::output::json::losses(&s.losses),
        });
        writeln!(
            self.w,
            "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{other}}}"
        )?;
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::flow::testing::flow_sample as sample;
    use crate::output::testing::Shared;

    #[test]
    fn an_empty_trace_is_still_a_trace() {
        let buf = Shared::default();
        ChromeTrace::new(Box::new(buf.clone()))
            .report(&FlowSummary::default(), &Window::default())
            .unwrap();
        let v: Value = serde_json::from_str(&buf.text()).unwrap();
        assert_eq!(v["traceEvents"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn calls_become_nested_complete_events() {
        let buf = Shared::default();
        let mut c = ChromeTrace::new(Box::new(buf.clone()));
        let mut events = sample();
        events.pop(); // main is still running at the end
        for e in &events {
            c.event(e).unwrap();
        }
        c.report(&FlowSummary::default(), &Window::default())
            .unwrap();
        let v: Value = serde_json::from_str(&buf.text()).unwrap();
        assert_eq!(v["displayTimeUnit"], "ns");
        let evs = v["traceEvents"].as_array().unwrap();
        assert_eq!(evs[3]["ph"], "M");
        let x: Vec<(String, f64, f64)> = evs[..3]
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["ts"].as_f64().unwrap(),
                    e["dur"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            x,
            [
                ("fib".to_string(), 15.0, 5.0),
                ("fib".to_string(), 10.0, 20.0),
                ("main".to_string(), 0.0, 30.0)
            ]
        );
        assert_eq!(evs[2]["args"]["unfinished"], true);
    }
}
