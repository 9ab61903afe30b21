//! pyprobe stacks as text, as `py-spy dump` and `jstack` print it: a header per thread, then its
//! frames innermost first as `function (file:line)`, with --locals each frame's variables. Every
//! name is the target's, and escaped; what was not shown (frames or threads past the limits, a
//! stack that could not be read to its end) is said where it was left out.

use crate::commands::stacks::{ProcessStacks, ThreadStack};
use crate::cpython::pystate::{MAX_FRAMES, MAX_THREADS};
use crate::escape::{escape, escape_controls};

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
    // The program's name for the thread, else the OS's (which 3.14+ sets from it, cut to 15
    // bytes).
    if let Some(n) = t.python_name.as_ref().or(t.name.as_ref()) {
        s.push_str(&format!(" \"{}\"", escape(n)));
    }
    s
}

/// The lines that follow a thread's frames: what of its stack is not shown, and why.
pub fn thread_tail(t: &ThreadStack) -> Vec<String> {
    let mut out = Vec::new();
    if t.frames_not_shown > 0 {
        out.push(format!(
            "... {} more frames not shown (limit {MAX_FRAMES})",
            t.frames_not_shown
        ));
    }
    if let Some(why) = &t.error {
        out.push(format!(
            "... stack unreadable after {} frames: {}",
            t.frames.len() as u64 + t.frames_not_shown,
            escape_controls(why)
        ));
    }
    out
}

/// The whole dump as text.
pub fn text(s: &ProcessStacks) -> String {
    let mut out = String::new();
    let command = if s.cmdline.is_empty() {
        &s.exe
    } else {
        &s.cmdline
    };
    out.push_str(&format!("Process {}: {}\n", s.pid, escape(command)));
    out.push_str(&format!(
        "CPython {} ({}){}\n",
        s.version,
        escape(&s.interpreter),
        if s.paused {
            ", held still for the read"
        } else {
            ""
        }
    ));
    for t in &s.threads {
        out.push_str(&format!("\n{}\n", thread_header(t)));
        for f in &t.frames {
            out.push_str(&format!(
                "    {} ({}:{})\n",
                escape(&f.name),
                escape(&f.file),
                f.line
            ));
            for l in f.locals.iter().flatten() {
                // A value is written as Python writes it, its own escapes included.
                out.push_str(&format!(
                    "        {} = {}\n",
                    escape(&l.name),
                    escape_controls(&l.value.to_string())
                ));
            }
        }
        for l in thread_tail(t) {
            out.push_str(&format!("    {l}\n"));
        }
    }
    if s.threads_not_shown > 0 {
        out.push_str(&format!(
            "\n... {} more threads not shown (limit {MAX_THREADS})\n",
            s.threads_not_shown
        ));
    }
    if let Some(why) = &s.threads_error {
        out.push_str(&format!(
            "\n... thread list unreadable after {} threads: {}\n",
            s.threads.len() as u64 + s.threads_not_shown,
            escape_controls(why)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpython::walk::Frame;

    /// Fails unless `text` shows `part`.
    fn assert_shows(text: &str, part: &str) {
        assert!(text.contains(part), "{part:?} not in:\n{text}");
    }

    fn thread(tid: i32, frames: &[&str], not_shown: u64, error: Option<&str>) -> ThreadStack {
        ThreadStack {
            tid: Some(tid),
            ident: 1,
            name: None,
            python_name: None,
            main: tid == 7,
            gil: Some(false),
            active: false,
            interp_id: 0,
            frames: frames
                .iter()
                .map(|n| Frame {
                    name: n.to_string(),
                    file: "/w/app.py".into(),
                    line: 3,
                    def_line: 1,
                    locals: None,
                })
                .collect(),
            frames_not_shown: not_shown,
            error: error.map(String::from),
        }
    }

    fn process(threads: Vec<ThreadStack>) -> ProcessStacks {
        ProcessStacks {
            pid: 7,
            version: "3.11.2".into(),
            interpreter: "/usr/bin/python3.11".into(),
            exe: "/usr/bin/python3.11".into(),
            cmdline: "python3 app.py".into(),
            paused: false,
            threads,
            threads_not_shown: 0,
            threads_error: None,
        }
    }

    #[test]
    fn a_bad_thread_is_marked_and_the_others_shown() {
        let s = process(vec![
            thread(7, &["main"], 0, None),
            thread(
                8,
                &["a", "b"],
                0,
                Some("frame->previous at 0x10: Bad address"),
            ),
        ]);
        assert_eq!(
            text(&s),
            "Process 7: python3 app.py
CPython 3.11.2 (/usr/bin/python3.11)

Thread 7 (main, idle)
    main (/w/app.py:3)

Thread 8 (idle)
    a (/w/app.py:3)
    b (/w/app.py:3)
    ... stack unreadable after 2 frames: frame->previous at 0x10: Bad address
"
        );
        assert_eq!(s.failure(), None, "one stack was read: an answer");
    }

    #[test]
    fn no_stack_read_at_all_is_a_failure() {
        let s = process(vec![
            thread(
                7,
                &[],
                0,
                Some("tstate's current frame at 0x8: Bad address"),
            ),
            thread(8, &[], 0, Some("x")),
        ]);
        let why = s.failure().expect("nothing was read");
        assert_eq!(
            why,
            "no stack of PID 7 could be read (2 threads; the first: tstate's current frame at \
             0x8: Bad address)"
        );
        // A thread with no Python frame and no error (an idle thread state) is an answer.
        assert_eq!(process(vec![thread(7, &[], 0, None)]).failure(), None);
    }

    #[test]
    fn what_was_cut_is_said() {
        let mut s = process(vec![thread(7, &["f", "f"], 904, None)]);
        s.threads_not_shown = 3;
        let t = text(&s);
        assert_shows(
            &t,
            "    f (/w/app.py:3)\n    ... 904 more frames not shown (limit 4096)\n",
        );
        assert!(
            t.ends_with("\n... 3 more threads not shown (limit 4096)\n"),
            "{t}"
        );
    }

    #[test]
    fn the_targets_names_are_escaped() {
        let mut t = thread(7, &["x\x1b]0;pwned\x07\r\nFAKE LINE"], 0, None);
        t.name = Some("w\x1b[2J".into());
        t.frames[0].file = "/w/\u{9b}a.py".into();
        t.frames[0].locals = Some(vec![crate::cpython::pystate::Local {
            name: "s".into(),
            value: crate::cpython::pystate::Value::Str {
                text: "a\\b\x1b".into(),
                len: 3,
            },
        }]);
        let mut s = process(vec![t]);
        s.cmdline = "python3 \x1b[31mred".into();
        let out = text(&s);
        assert_shows(
            &out,
            "    x\\x1b]0;pwned\\x07\\x0d\\x0aFAKE LINE (/w/\\u{009b}a.py:3)\n",
        );
        assert_shows(&out, "Thread 7 (main, idle) \"w\\x1b[2J\"\n");
        assert!(
            out.starts_with("Process 7: python3 \\x1b[31mred\n"),
            "{out}"
        );
        // The value as Python's repr-like display wrote it, its backslash not doubled again.
        assert!(out.contains("\n        s = \"a\\\\b\\u{1b}\"\n"), "{out}");
        assert!(!out.bytes().any(|b| b < 0x20 && b != b'\n'), "{out}");
        // threading's name wins over the OS's, escaped the same.
        let mut t = thread(7, &["f"], 0, None);
        t.name = Some("python3.11".into());
        t.python_name = Some("worker-0\x07".into());
        let named = text(&process(vec![t]));
        assert!(
            named.contains("Thread 7 (main, idle) \"worker-0\\x07\"\n"),
            "{named}"
        );
    }
}
