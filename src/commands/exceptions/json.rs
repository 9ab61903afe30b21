//! pyprobe exceptions as JSON: one object per line for each streamed exception, and a report
//! document of the counts.

use serde_json::{Value, json};

use crate::commands::exceptions::{ExceptionEvent, ExceptionKey, ExceptionReport};
use crate::output::Window;

fn key_fields(k: &ExceptionKey) -> serde_json::Map<String, Value> {
    let v = json!({
        "type": k.type_name,
        "function": k.function,
        "file": k.file,
        "line": k.line,
        "ended_in": k.end_function,
        "frames": k.frames,
        "reached_outermost_frame": k.reached_top,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object"),
    }
}

pub fn event(e: &ExceptionEvent) -> Value {
    let mut m = key_fields(&e.key);
    m.insert("tid".into(), e.tid.into());
    m.insert("offset_ns".into(), e.offset_ns.into());
    Value::Object(m)
}

pub fn report(r: &ExceptionReport, window: &Window) -> Value {
    let rows: Vec<Value> = r
        .rows()
        .into_iter()
        .map(|(k, n)| {
            let mut m = key_fields(k);
            m.insert("count".into(), n.into());
            Value::Object(m)
        })
        .collect();
    json!({
        "exceptions": rows,
        "total": r.total(),
        "frames_passed": r.frames_passed,
        "clock": window.clock,
        "lost": crate::output::json::losses(&r.losses),
    })
}
