//! pyprobe tasks as JSON: one document with every pending task, its coroutines innermost first
//! and its edges (the ids it awaits and the ids awaiting it).

use serde_json::{Value, json};

use crate::commands::tasks::{ProcessTasks, Task};

fn task(t: &Task) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "state": t.state,
        "frames": t.frames.iter().map(|f| json!({
            "name": f.name, "file": f.file, "line": f.line, "def_line": f.def_line,
        })).collect::<Vec<_>>(),
        "chain_error": t.chain_error,
        "awaits": t.awaits,
        "awaited_by": t.awaited_by,
    })
}

pub fn document(r: &ProcessTasks) -> Value {
    json!({
        "pid": r.pid,
        "python": r.version,
        "asyncio_loaded": r.asyncio_loaded,
        "paused": r.paused,
        "moved_ms": r.moved_ms,
        "read_ms": r.read_ms,
        "tasks": r.tasks.iter().map(task).collect::<Vec<_>>(),
        "tasks_not_shown": r.not_shown,
        "error": r.error,
        "cycles": r.cycles,
        "cannot_show": r.cannot_show,
    })
}
