//! pyprobe imports as JSON: the tree, one document.
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::commands::imports::{ImportNode, ImportReport};
use crate::output::{Never, Output, Window};

pub struct Json {
    w: Box<dyn Write>,
}

impl Json {
    pub fn new(w: Box<dyn Write>) -> Json {
        Json { w }
    }
}

impl Output<Never, ImportReport> for Json {
    fn report(&mut self, r: &ImportReport, _: &Window) -> io::Result<()> {
        writeln!(self.w, "{}", report(r))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

fn node_json(n: &ImportNode) -> Value {
    json!({
        "module": n.event.module,
        "module_truncated": n.event.module_truncated,
        "found": n.event.found,
        "tid": n.event.tid,
        "start_ns": n.event.start_ns,
        "cumulative_ns": n.cumulative_ns(),
        "self_ns": n.self_ns(),
        "children": n.children.iter().map(node_json).collect::<Vec<_>>(),
    })
}

pub fn report(report: &ImportReport) -> Value {
    json!({
        "imports": report.roots.iter().map(node_json).collect::<Vec<_>>(),
        "count": report.count(),
        "total_ns": report.total_ns(),
        "lost": crate::output::json::losses(&report.losses),
    })
}
