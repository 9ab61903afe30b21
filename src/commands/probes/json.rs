//! `pyprobe probes` as JSON.
use serde_json::{Value, json};

use crate::commands::probes::{ProbesReport, verdict};

pub fn report(report: &ProbesReport) -> Value {
    let target = &report.target;
    let probes: Vec<Value> = report
        .probes
        .iter()
        .map(|r| {
            let (works, why) = verdict(&r.support);
            json!({
                "name": r.name,
                "sites": r.sites,
                "semaphore": r.semaphore,
                "semaphore_value": r.semaphore_value,
                "arguments": r.args,
                "works": works != "no" && works != "unknown",
                "note": why,
            })
        })
        .collect();
    let tools: Vec<Value> = report
        .tools
        .iter()
        .map(|t| match &t.means {
            Ok(how) => json!({"tool": t.name, "works": true, "how": how}),
            Err(why) => json!({"tool": t.name, "works": false, "why": why}),
        })
        .collect();
    json!({
        "pid": target.pid,
        "exe": target.exe,
        "interpreter": target.interpreter,
        "version": target.version.map(|v| v.to_string()),
        "probes": probes,
        "tools": tools,
    })
}
