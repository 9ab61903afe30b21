//! pyprobe audit as JSON: one object per event as it happens, then a summary object.

use serde_json::{Value, json};

use crate::commands::audit::{AuditEvent, AuditSummary};
use crate::output::Window;

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

pub fn summary(s: &AuditSummary, _: &Window) -> Value {
    json!({
        "events": s.events,
        "arguments_decoded": s.decodes,
        "lost": crate::output::json::losses(&s.losses),
    })
}
