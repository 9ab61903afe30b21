//! `pyprobe probes`: the interpreter file, its version, and each probe with whether it works.
use serde_json::{Value, json};

use crate::target::Target;
use crate::versions::{Support, probe_support};

/// One probe of the interpreter, all its sites taken together.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    pub name: String,
    pub sites: usize,
    pub semaphore: u64,
    pub semaphore_value: Option<u16>,
    pub args: String,
    pub support: Option<Support>,
}

pub fn rows(target: &Target) -> Vec<ProbeRow> {
    let mut rows: Vec<ProbeRow> = Vec::new();
    for site in target.elf.python_probes() {
        if let Some(r) = rows.iter_mut().find(|r| r.name == site.name) {
            r.sites += 1;
            continue;
        }
        rows.push(ProbeRow {
            name: site.name.clone(),
            sites: 1,
            semaphore: site.semaphore,
            semaphore_value: target.semaphore_value(&site.name),
            args: site.args.clone(),
            support: target.version.map(|v| probe_support(v, &site.name)),
        });
    }
    rows
}

fn verdict(s: &Option<Support>) -> (&'static str, &'static str) {
    match s {
        None => ("unknown", "the CPython version could not be determined"),
        Some(Support::Fires) => ("yes", ""),
        Some(Support::Caveat(why)) => ("yes*", why),
        Some(Support::Broken(why)) | Some(Support::NotInVersion(why)) => ("no", why),
    }
}

pub fn table(target: &Target) -> String {
    let mut out = format!(
        "PID {}: {}\ninterpreter file: {} (CPython {})\n",
        target.pid,
        target.exe,
        target.interpreter,
        target.version_text()
    );
    let rows = rows(target);
    if rows.is_empty() {
        out.push_str("no USDT probes: this interpreter was built without --with-dtrace\n");
        return out;
    }
    out.push_str(&format!(
        "{:<28} {:>5} {:>18} {:>7} {:<6} ARGUMENTS\n",
        "PROBE", "SITES", "SEMAPHORE", "ACTIVE", "WORKS"
    ));
    let mut notes = Vec::new();
    for r in &rows {
        let (works, why) = verdict(&r.support);
        out.push_str(&format!(
            "{:<28} {:>5} {:>#18x} {:>7} {:<6} {}\n",
            r.name,
            r.sites,
            r.semaphore,
            r.semaphore_value
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            works,
            r.args
        ));
        if !why.is_empty() {
            notes.push(format!("  {}: {}", r.name, why));
        }
    }
    if !notes.is_empty() {
        out.push_str("notes:\n");
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

pub fn json(target: &Target) -> Value {
    let probes: Vec<Value> = rows(target)
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
    json!({
        "pid": target.pid,
        "exe": target.exe,
        "interpreter": target.interpreter,
        "version": target.version.map(|v| v.to_string()),
        "probes": probes,
    })
}
