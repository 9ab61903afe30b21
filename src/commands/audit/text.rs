//! pyprobe audit as text: one row per event as it happens, then a summary.
use std::io::{self, Write};

use crate::commands::audit::{AuditEvent, AuditSummary};
use crate::escape::escape;
use crate::output::{Output, Window};

pub struct Table {
    w: Box<dyn Write>,
}

impl Table {
    pub fn new(w: Box<dyn Write>) -> Table {
        Table { w }
    }
}

pub fn row(e: &AuditEvent) -> String {
    format!(
        "{:<12.6} {:>7} {:>7} {:<24} {}\n",
        e.time_ns as f64 / 1e9,
        e.pid,
        e.tid,
        format!(
            "{}{}",
            escape(&e.name),
            if e.name_truncated { "..." } else { "" }
        ),
        e.detail()
    )
}

impl Output<AuditEvent, AuditSummary> for Table {
    fn start(&mut self) -> io::Result<()> {
        writeln!(
            self.w,
            "{:<12} {:>7} {:>7} {:<24} DETAIL",
            "TIME(s)", "PID", "TID", "EVENT"
        )?;
        self.w.flush()
    }

    fn event(&mut self, e: &AuditEvent) -> io::Result<()> {
        self.w.write_all(row(e).as_bytes())
    }

    fn report(&mut self, s: &AuditSummary, _: &Window) -> io::Result<()> {
        writeln!(self.w, "{} events", s.events)?;
        if !s.decodes {
            writeln!(
                self.w,
                "NOTE: arguments not decoded: pyprobe knows no object layout for this CPython version"
            )?;
        }
        self.w
            .write_all(crate::output::text::warnings(&s.losses).as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::audit::ArgValue;

    #[test]
    fn a_row_shows_time_ids_name_and_detail() {
        let e = AuditEvent {
            time_ns: 1_500_000_000,
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
            row(&e),
            "1.500000          42      43 os.system                command=b'ls'\n"
        );
        let v = crate::commands::audit::json::event(&e);
        assert_eq!(v["time_ns"], 1_500_000_000u64);
        assert_eq!(v["args"]["command"]["text"], "ls");
    }
}
