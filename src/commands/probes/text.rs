//! `pyprobe probes` as text: the interpreter, its probes, and which tools work on it.
use crate::commands::probes::{ProbesReport, verdict};
use crate::escape::escape;

pub fn table(report: &ProbesReport) -> String {
    let target = &report.target;
    let mut out = format!(
        "PID {}: {}\ninterpreter file: {} (CPython {})\n",
        target.pid,
        escape(&target.exe),
        escape(&target.interpreter),
        target.version_text()
    );
    if report.probes.is_empty() {
        out.push_str("no USDT probes: this interpreter was built without --with-dtrace\n");
    } else {
        out.push_str(&format!(
            "{:<28} {:>5} {:>18} {:>7} {:<6} ARGUMENTS\n",
            "PROBE", "SITES", "SEMAPHORE", "ACTIVE", "WORKS"
        ));
        let mut notes = Vec::new();
        for r in &report.probes {
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
                notes.push(format!("  {}: {}\n", r.name, why));
            }
        }
        if !notes.is_empty() {
            out.push_str("notes:\n");
            out.push_str(&notes.concat());
        }
    }
    let width = report
        .tools
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0)
        .max(20);
    out.push_str(&format!(
        "\n{:<width$} {:<5} HOW, OR WHY NOT\n",
        "TOOL", "WORKS"
    ));
    for t in &report.tools {
        let (works, how) = match &t.means {
            Ok(how) => ("yes", how.as_str()),
            Err(why) => ("no", why.as_str()),
        };
        out.push_str(&format!("{:<width$} {:<5} {how}\n", t.name, works));
    }
    out
}
