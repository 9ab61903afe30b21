//! pyprobe exceptions as JSON: one object per line for each streamed exception, and a report
//! document of the counts.
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::commands::exceptions::{ExceptionEvent, ExceptionKey, ExceptionReport};
use crate::output::{Output, Window};

pub struct Json {
    w: Box<dyn Write>,
}

impl Json {
    pub fn new(w: Box<dyn Write>) -> Json {
        Json { w }
    }
}

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

impl Output<ExceptionEvent, ExceptionReport> for Json {
    fn event(&mut self, e: &ExceptionEvent) -> io::Result<()> {
        let mut m = key_fields(&e.key);
        m.insert("tid".into(), e.tid.into());
        m.insert("offset_ns".into(), e.offset_ns.into());
        writeln!(self.w, "{}", Value::Object(m))
    }

    fn report(&mut self, r: &ExceptionReport, window: &Window) -> io::Result<()> {
        writeln!(self.w, "{}", report(r, window))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
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
