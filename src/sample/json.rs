//! record as JSON: every (thread, stack) with its samples, frames innermost first.
use std::io::{self, Write};

use serde_json::json;

use crate::output::{Never, Output, Window};
use crate::sample::Profile;

pub struct Json {
    w: Box<dyn Write>,
}

impl Json {
    pub fn new(w: Box<dyn Write>) -> Json {
        Json { w }
    }
}

impl Output<Never, Profile> for Json {
    fn report(&mut self, p: &Profile, _: &Window) -> io::Result<()> {
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
        let doc = json!({
            "rate_hz": p.rate_hz,
            "elapsed_ns": p.elapsed.as_nanos() as u64,
            "idle": p.idle,
            "samples": p.total_samples(),
            "unnamed_samples": p.unnamed,
            "lost": crate::output::json::losses(&p.losses),
            "stacks": stacks,
        });
        writeln!(self.w, "{doc}")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
