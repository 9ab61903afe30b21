//! pyprobe audit as JSON: one object per event as it happens, then a summary object.
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::commands::audit::{AuditEvent, AuditSummary};
use crate::output::{Output, Window};

pub struct Json {
    w: Box<dyn Write>,
}

impl Json {
    pub fn new(w: Box<dyn Write>) -> Json {
        Json { w }
    }
}

pub fn event(e: &AuditEvent) -> Value {
    let args: serde_json::Map<String, Value> = e
        .args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_json()))
        .collect();
    json!({
        "time_ns": e.time_ns,
        "pid": e.pid,
        "tid": e.tid,
        "event": e.name,
        "event_truncated": e.name_truncated,
        "nargs": e.nargs,
        "args": args,
        "detail": e.detail(),
    })
}

impl Output<AuditEvent, AuditSummary> for Json {
    fn event(&mut self, e: &AuditEvent) -> io::Result<()> {
        writeln!(self.w, "{}", event(e))
    }

    fn report(&mut self, s: &AuditSummary, _: &Window) -> io::Result<()> {
        let v = json!({
            "events": s.events,
            "arguments_decoded": s.decodes,
            "lost": crate::output::json::losses(&s.losses),
        });
        writeln!(self.w, "{v}")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
