//! pyprobe exceptions as text: one line per exception as it ends (streaming), and the table
//! of counts, hottest first.
use std::io::{self, Write};

use crate::commands::exceptions::{ExceptionEvent, ExceptionKey, ExceptionReport};
use crate::escape::escape;
use crate::output::{Output, Window};

pub struct Table {
    w: Box<dyn Write>,
    stream: bool,
}

impl Table {
    pub fn new(w: Box<dyn Write>, stream: bool) -> Table {
        Table { w, stream }
    }
}

fn place(k: &ExceptionKey) -> String {
    format!("{} ({}:{})", escape(&k.function), escape(&k.file), k.line)
}

fn end(k: &ExceptionKey) -> String {
    format!(
        "{}{}",
        escape(&k.end_function),
        if k.reached_top {
            " [outermost frame]"
        } else {
            ""
        }
    )
}

impl Output<ExceptionEvent, ExceptionReport> for Table {
    fn start(&mut self) -> io::Result<()> {
        if self.stream {
            writeln!(
                self.w,
                "{:>12} {:>8}  {:<24} {:>6}  RAISED IN -> ENDED IN",
                "TIME(s)", "TID", "TYPE", "FRAMES"
            )?;
        }
        Ok(())
    }

    fn event(&mut self, e: &ExceptionEvent) -> io::Result<()> {
        writeln!(
            self.w,
            "{:>12.6} {:>8}  {:<24} {:>6}  {} -> {}",
            e.offset_ns as f64 / 1e9,
            e.tid,
            escape(&e.key.type_name),
            e.key.frames,
            place(&e.key),
            end(&e.key)
        )
    }

    fn report(&mut self, r: &ExceptionReport, window: &Window) -> io::Result<()> {
        self.w.write_all(table(r, window).as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

pub fn table(r: &ExceptionReport, window: &Window) -> String {
    let mut out = String::new();
    if let Some(clock) = &window.clock {
        out.push_str(&format!("{clock}\n"));
    }
    out.push_str(&format!(
        "{:>10}  {:<24} {:>6}  RAISED IN -> ENDED IN\n",
        "COUNT", "TYPE", "FRAMES"
    ));
    for (k, n) in r.rows() {
        out.push_str(&format!(
            "{:>10}  {:<24} {:>6}  {} -> {}\n",
            n,
            escape(&k.type_name),
            k.frames,
            place(k),
            end(k)
        ));
    }
    out.push_str(&format!(
        "{} exceptions, {} frames passed\n",
        r.total(),
        r.frames_passed
    ));
    out.push_str(&crate::output::text::warnings(&r.losses));
    out
}
