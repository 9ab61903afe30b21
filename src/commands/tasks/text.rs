//! pyprobe tasks as text: the await tree as `python3.14 -m asyncio pstree` draws it (each task
//! `(T) name`, under it its coroutines outermost first, under the innermost the tasks it
//! awaits), or with --table one row per task as `asyncio ps`. Every name is the target's, and
//! escaped; cycles, what was not read and what the version cannot show are said at the end.
use std::collections::BTreeSet;
use std::io::{self, Write};

use crate::commands::tasks::{ProcessTasks, Task};
use crate::cpython::pystate::MAX_TASKS;
use crate::cpython::walk::Frame;
use crate::escape::escape;
use crate::output::{Never, Output, Window};

pub struct Text {
    w: Box<dyn Write>,
    table: bool,
}

impl Text {
    pub fn new(w: Box<dyn Write>, table: bool) -> Text {
        Text { w, table }
    }
}

/// `name file:line`, as pstree shows a coroutine.
pub fn frame_text(f: &Frame) -> String {
    format!("{} {}:{}", escape(&f.name), escape(&f.file), f.line)
}

/// The tree's lines, without the header.
pub fn tree(r: &ProcessTasks) -> Vec<String> {
    let mut out = Vec::new();
    let mut shown = BTreeSet::new();
    let roots: Vec<&Task> = r.tasks.iter().filter(|t| t.awaited_by.is_empty()).collect();
    trees(r, &roots, &mut shown, &mut out);
    // Tasks only a cycle reaches.
    let rest: Vec<&Task> = r.tasks.iter().filter(|t| !shown.contains(&t.id)).collect();
    trees(r, &rest, &mut shown, &mut out);
    out
}

/// A tree under each of `tops` not shown yet (a root is never shown before its turn).
fn trees(r: &ProcessTasks, tops: &[&Task], shown: &mut BTreeSet<u64>, out: &mut Vec<String>) {
    for (i, t) in tops.iter().enumerate() {
        if !shown.contains(&t.id) {
            let last = i + 1 == tops.len();
            node(r, t, "", last, &mut Vec::new(), shown, out);
        }
    }
}

fn node(
    r: &ProcessTasks,
    t: &Task,
    prefix: &str,
    last: bool,
    path: &mut Vec<u64>,
    shown: &mut BTreeSet<u64>,
    out: &mut Vec<String>,
) {
    let (branch, more) = if last {
        ("└── ", "    ")
    } else {
        ("├── ", "│   ")
    };
    if path.contains(&t.id) {
        out.push(format!("{prefix}{branch}(T) {} (cycle)", escape(&t.name)));
        return;
    }
    shown.insert(t.id);
    out.push(format!("{prefix}{branch}(T) {}", escape(&t.name)));
    let mut prefix = format!("{prefix}{more}");
    // Outermost coroutine first, each under the one that awaits it.
    for f in t.frames.iter().rev() {
        out.push(format!("{prefix}└──  {}", frame_text(f)));
        prefix.push_str("    ");
    }
    if let Some(why) = &t.chain_error {
        out.push(format!(
            "{prefix}└──  (not followed further: {})",
            escape(why)
        ));
    }
    path.push(t.id);
    let children: Vec<&Task> = t.awaits.iter().filter_map(|c| r.task(*c)).collect();
    for (i, c) in children.iter().enumerate() {
        node(r, c, &prefix, i + 1 == children.len(), path, shown, out);
    }
    path.pop();
}

/// The table's rows, header first.
pub fn table(r: &ProcessTasks) -> Vec<String> {
    let name_of = |id: &u64| {
        r.task(*id)
            .map_or_else(|| format!("{id:#x}"), |t| escape(&t.name).into_owned())
    };
    let rows: Vec<[String; 5]> = r
        .tasks
        .iter()
        .map(|t| {
            [
                format!("{:#x}", t.id),
                escape(&t.name).into_owned(),
                t.state.clone(),
                t.frames
                    .iter()
                    .map(|f| escape(&f.name))
                    .collect::<Vec<_>>()
                    .join(" <- "),
                t.awaited_by
                    .iter()
                    .map(name_of)
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    let head = [
        "TASK ID".to_string(),
        "TASK NAME".into(),
        "STATE".into(),
        "COROUTINE STACK (innermost first)".into(),
        "AWAITED BY".into(),
    ];
    let mut widths = head.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    std::iter::once(&head)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:w$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

pub fn header(r: &ProcessTasks) -> String {
    format!(
        "PID {} (Python {}): {} asyncio task{}{} (read in {:.1} ms)",
        r.pid,
        r.version,
        r.tasks.len(),
        if r.tasks.len() == 1 { "" } else { "s" },
        if r.paused {
            ", held still for the read"
        } else {
            ""
        },
        r.read_ms
    )
}

impl Output<Never, ProcessTasks> for Text {
    fn report(&mut self, r: &ProcessTasks, _: &Window) -> io::Result<()> {
        if !r.asyncio_loaded {
            return writeln!(
                self.w,
                "PID {} (Python {}) has not imported asyncio: no tasks",
                r.pid, r.version
            );
        }
        writeln!(self.w, "{}", header(r))?;
        let lines = if self.table { table(r) } else { tree(r) };
        for l in lines {
            writeln!(self.w, "{l}")?;
        }
        for c in &r.cycles {
            let names: Vec<String> = c
                .iter()
                .chain(c.first())
                .map(|id| {
                    r.task(*id)
                        .map_or_else(|| format!("{id:#x}"), |t| escape(&t.name).into_owned())
                })
                .collect();
            writeln!(self.w, "cycle: {}", names.join(" -> "))?;
        }
        if r.not_shown > 0 {
            writeln!(
                self.w,
                "... {} more tasks not shown (limit {MAX_TASKS})",
                r.not_shown
            )?;
        }
        if let Some(ms) = r.moved_ms {
            writeln!(
                self.w,
                "(the tasks changed while they were read, and a read takes {ms:.0} ms, longer than \
                 pyprobe holds a process still: shown as the last read saw them)"
            )?;
        }
        if let Some(e) = &r.error {
            writeln!(self.w, "(not every task could be read: {})", escape(e))?;
        }
        for c in &r.cannot_show {
            writeln!(self.w, "not seen on Python {}: {c}", r.version)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
