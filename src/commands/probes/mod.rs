//! `pyprobe probes`: what an interpreter offers, read from its file and its memory: every USDT
//! probe with its semaphore and whether it fires on the version, and which tools work there.
mod json;
mod text;
use crate::commands::tools::{Means, TOOLS, means};
use crate::error::Result;
use crate::output::{Destination, formats};
use crate::source::breakpoints;
use crate::target::Target;
use crate::trace::filter::Pattern;
use crate::versions::{Support, probe_support};

formats!(pub ProbesFormat: Text, Json);

/// One probe of the interpreter, all its sites taken together.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    pub name: String,
    pub sites: usize,
    pub semaphore: u64,
    /// How many tracers enable it now (read from the target's memory).
    pub semaphore_value: Option<u16>,
    pub args: String,
    pub support: Option<Support>,
}

/// Whether a tool works on the target: how (Ok), or why not (Err).
#[derive(Debug, Clone)]
pub struct ToolRow {
    pub name: &'static str,
    pub means: std::result::Result<String, String>,
}

pub struct ProbesReport {
    pub target: Target,
    pub probes: Vec<ProbeRow>,
    pub tools: Vec<ToolRow>,
}

impl ProbesReport {
    pub fn of(target: Target) -> ProbesReport {
        let mut probes: Vec<ProbeRow> = Vec::new();
        for site in target.elf.python_probes() {
            if let Some(r) = probes.iter_mut().find(|r| r.name == site.name) {
                r.sites += 1;
                continue;
            }
            probes.push(ProbeRow {
                name: site.name.clone(),
                sites: 1,
                semaphore: site.semaphore,
                semaphore_value: target.semaphore_value(&site.name),
                args: site.args.clone(),
                support: target.version.map(|v| probe_support(v, &site.name)),
            });
        }
        let mut tools = Vec::new();
        for t in TOOLS {
            let m = means(&target, t.needs);
            // pycount's own source for a few exact names, where the trampoline's stubs are.
            let stubs = matches!(&m, Ok(Means::Functions(source, _)) if breakpoints::serve(source));
            tools.push(ToolRow {
                name: t.name,
                means: m.map(|m| m.describe()).map_err(|e| e.one_line()),
            });
            if stubs && t.name == "pycount" {
                tools.push(ToolRow {
                    name: "pycount --filter NAME (exact, up to 4)",
                    means: breakpoints::describe(),
                });
            }
            // Watchpoints need no probe: a row wherever pycount is a tool, served or not.
            if t.name == "pycount" {
                tools.push(ToolRow {
                    name: "pycount --source watch --filter NAME (exact, up to 4)",
                    means: crate::source::watch::describe(&target),
                });
            }
        }
        ProbesReport {
            target,
            probes,
            tools,
        }
    }
}

/// Whether a probe works, in a word, and the reason when that needs one.
pub fn verdict(s: &Option<Support>) -> (&'static str, &'static str) {
    match s {
        None => ("unknown", "the CPython version could not be determined"),
        Some(Support::Fires) => ("yes", ""),
        Some(Support::Caveat(why)) => ("yes*", why),
        Some(Support::Broken(why)) | Some(Support::NotInVersion(why)) => ("no", why),
    }
}

/// `--filter`: the code objects the watchpoint source finds for the patterns in the target's
/// memory, each with the address its watchpoint would take.
fn watch_listing(target: &Target, filters: &[Pattern]) -> std::result::Result<Vec<String>, String> {
    let w = crate::source::watch::Watch::open(target, filters).map_err(|e| e.one_line())?;
    Ok(w.listing())
}

pub fn run(pid: i32, filters: &[Pattern], dest: Destination) -> Result<()> {
    // No BPF here either: what the kernel asks is what reading /proc/PID/exe and memory asks.
    if std::path::Path::new(&format!("/proc/{pid}")).exists() {
        crate::target::privileges::check_ptrace(pid)?;
    }
    let target = Target::from_pid(pid)?;
    let listing = (!filters.is_empty()).then(|| watch_listing(&target, filters));
    let report = ProbesReport::of(target);
    let mut w = dest.open()?;
    let out = match dest.format_of::<ProbesFormat>()? {
        ProbesFormat::Json => {
            let mut v = json::report(&report);
            if let Some(l) = &listing {
                v["watch"] = match l {
                    Ok(rows) => serde_json::json!(rows),
                    Err(why) => serde_json::json!({ "error": why }),
                };
            }
            format!("{v}\n")
        }
        ProbesFormat::Text => {
            let mut t = text::table(&report);
            match &listing {
                Some(Ok(rows)) => {
                    t.push_str(&format!(
                        "\n--filter on watchpoints: {} code object{} found\n",
                        rows.len(),
                        if rows.len() == 1 { "" } else { "s" }
                    ));
                    for r in rows {
                        t.push_str(&format!("  {}\n", crate::escape::escape(r)));
                    }
                }
                Some(Err(why)) => t.push_str(&format!("\n--filter on watchpoints: {why}\n")),
                None => {}
            }
            t
        }
    };
    w.write_all(out.as_bytes())
        .and_then(|()| w.flush())
        .map_err(crate::error::Error::Output)
}
