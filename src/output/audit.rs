//! pyprobe audit's output: one line per event as it happens (a table row or a JSON object),
//! then a summary with what was lost.
use serde_json::{Value, json};

use crate::audit::{AuditEvent, AuditLosses};

pub fn header() -> String {
    format!(
        "{:<12} {:>7} {:>7} {:<24} DETAIL\n",
        "TIME(s)", "PID", "TID", "EVENT"
    )
}

/// `since_ns`: the monotonic time tracing started, so that TIME counts from there.
pub fn row(e: &AuditEvent, since_ns: u64) -> String {
    format!(
        "{:<12.6} {:>7} {:>7} {:<24} {}\n",
        e.ts.saturating_sub(since_ns) as f64 / 1e9,
        e.pid,
        e.tid,
        event_name(e),
        e.detail()
    )
}

fn event_name(e: &AuditEvent) -> String {
    format!("{}{}", e.name, if e.name_truncated { "..." } else { "" })
}

pub fn json(e: &AuditEvent, since_ns: u64) -> Value {
    let args: serde_json::Map<String, Value> = e
        .args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_json()))
        .collect();
    json!({
        "time_ns": e.ts.saturating_sub(since_ns),
        "pid": e.pid,
        "tid": e.tid,
        "event": e.name,
        "event_truncated": e.name_truncated,
        "nargs": e.nargs,
        "args": args,
        "detail": e.detail(),
    })
}

pub fn summary_table(events: u64, losses: &AuditLosses, decodes: bool) -> String {
    let mut out = format!("{events} events\n");
    if !decodes {
        out.push_str(
            "NOTE: arguments not decoded: pyprobe knows no object layout for this CPython version\n",
        );
    }
    for line in losses.lines() {
        out.push_str(&format!("WARNING: {line}\n"));
    }
    out
}

pub fn summary_json(events: u64, losses: &AuditLosses, decodes: bool) -> Value {
    json!({
        "events": events,
        "arguments_decoded": decodes,
        "lost": losses.to_json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::ArgValue;

    #[test]
    fn a_row_shows_time_ids_name_and_detail() {
        let e = AuditEvent {
            ts: 2_500_000_000,
            pid: 42,
            tid: 43,
            name: "os.system".into(),
            name_truncated: false,
            nargs: 1,
            args: vec![(
                "command",
                ArgValue::Bytes {
                    text: "ls".into(),
                    truncated: false,
                },
            )],
        };
        assert_eq!(
            row(&e, 1_000_000_000),
            "1.500000          42      43 os.system                command=b'ls'\n"
        );
        let v = json(&e, 1_000_000_000);
        assert_eq!(v["time_ns"], 1_500_000_000u64);
        assert_eq!(v["args"]["command"]["text"], "ls");
        assert_eq!(summary_json(3, &AuditLosses::default(), true)["events"], 3);
    }
}
