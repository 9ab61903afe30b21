//! pyprobe stacks as JSON: one document with every thread and its frames, innermost first.

use serde_json::{Value, json};

use crate::commands::stacks::{ProcessStacks, ThreadStack};
use crate::cpython::walk::Frame;

fn frame(f: &Frame) -> Value {
    let mut v = json!({"name": f.name, "file": f.file, "line": f.line, "def_line": f.def_line});
    if let Some(locals) = &f.locals {
        v["locals"] = locals
            .iter()
            .map(|l| json!({"name": l.name, "value": l.value.to_string()}))
            .collect();
    }
    v
}

fn thread(t: &ThreadStack) -> Value {
    json!({
        "tid": t.tid,
        "ident": t.ident,
        "name": t.name,
        "python_name": t.python_name,
        "main": t.main,
        "gil": t.gil,
        "active": t.active,
        "interpreter_id": t.interp_id,
        "frames": t.frames.iter().map(frame).collect::<Vec<_>>(),
        "frames_not_shown": t.frames_not_shown,
        "error": t.error,
    })
}

pub fn document(s: &ProcessStacks) -> Value {
    json!({
        "pid": s.pid,
        "python": s.version,
        "interpreter": s.interpreter,
        "exe": s.exe,
        "cmdline": s.cmdline,
        "paused": s.paused,
        "threads": s.threads.iter().map(thread).collect::<Vec<_>>(),
        "threads_not_shown": s.threads_not_shown,
        "threads_error": s.threads_error,
    })
}
