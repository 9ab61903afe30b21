//! pyprobe imports as JSON: the tree, one document.

use serde_json::{Value, json};

use crate::commands::imports::{ImportNode, ImportReport};

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
