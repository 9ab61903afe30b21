//! pyprobe stacks as text, as `py-spy dump` and `jstack` print it: a header per thread, then its
//! frames innermost first as `function (file:line)`, with --locals each frame's variables.
use std::io::{self, Write};

use crate::output::{Never, Output, Window};
use crate::stacks::{ProcessStacks, ThreadStack};

pub struct Text {
    w: Box<dyn Write>,
}

impl Text {
    pub fn new(w: Box<dyn Write>) -> Text {
        Text { w }
    }
}

/// `Thread 1234 (main, active, GIL) "worker"`.
pub fn thread_header(t: &ThreadStack) -> String {
    let mut marks = Vec::new();
    if t.main {
        marks.push("main");
    }
    marks.push(if t.active { "active" } else { "idle" });
    if t.gil == Some(true) {
        marks.push("holds the GIL");
    }
    if t.ident == 0 {
        marks.push("no Python");
    }
    if t.interp_id > 0 {
        marks.push("subinterpreter");
    }
    let id = t
        .tid
        .map_or_else(|| format!("{:#x}", t.ident), |tid| tid.to_string());
    let mut s = format!("Thread {id} ({})", marks.join(", "));
    if let Some(n) = &t.name {
        s.push_str(&format!(" {n:?}"));
    }
    s
}

impl Output<Never, ProcessStacks> for Text {
    fn report(&mut self, s: &ProcessStacks, _: &Window) -> io::Result<()> {
        let command = if s.cmdline.is_empty() {
            &s.exe
        } else {
            &s.cmdline
        };
        writeln!(self.w, "Process {}: {command}", s.pid)?;
        writeln!(
            self.w,
            "CPython {} ({}){}",
            s.version,
            s.interpreter,
            if s.paused {
                ", held still for the read"
            } else {
                ""
            }
        )?;
        for t in &s.threads {
            writeln!(self.w, "\n{}", thread_header(t))?;
            for f in &t.frames {
                writeln!(self.w, "    {} ({}:{})", f.name, f.file, f.line)?;
                if let Some(locals) = &f.locals {
                    for l in locals {
                        writeln!(self.w, "        {} = {}", l.name, l.value)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
