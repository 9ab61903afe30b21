//! record as JSON: every (thread, stack) with its samples, frames innermost first.
use serde_json::{Value, json};

use crate::output::Window;
use crate::sample::Profile;

pub fn report(p: &Profile, _: &Window) -> Value {
    let stacks: Vec<_> = p
        .counts
        .iter()
        .map(|c| {
            let frames: Vec<_> = c.stack.as_ref().map_or_else(Vec::new, |s| {
                s.frames
                    .iter()
                    .map(|f| json!({"name": f.name, "file": f.file, "line": f.line, "def_line": f.def_line}))
                    .collect()
            });
            json!({
                "tid": c.tid,
                "thread": &*c.thread,
                "samples": c.count,
                "truncated": c.stack.as_ref().is_some_and(|s| s.truncated),
                "frames": frames,
            })
        })
        .collect();
    json!({
        "rate_hz": p.rate_hz,
        "elapsed_ns": p.elapsed.as_nanos() as u64,
        "idle": p.idle,
        "samples": p.total_samples(),
        "unnamed_samples": p.unnamed,
        "lost": crate::output::json::losses(&p.losses),
        "stacks": stacks,
    })
}
