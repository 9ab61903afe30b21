//! pyprobe tasks: every pending asyncio task of a process, what each one awaits (its
//! coroutines, innermost first) and which task awaits which, read from its memory
//! (cpython/pystate/tasks.rs) without BPF. Read twice while the process runs; where the two
//! reads differ, once more with every thread held still (cpython/pause.rs) and let go at once.
mod json;
mod text;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::cpython::pause::Paused;
use crate::cpython::pystate::{Interpreter, TaskList, TaskReader, Waiter};
use crate::cpython::walk::{Frame, symbolize};
use crate::error::{Error, Result};
use crate::output::json::Documents;
use crate::output::{Destination, Never, Output, Window, formats};
use crate::target::Target;
use crate::target::privileges::check_ptrace;
use crate::versions::PyVersion;

formats!(pub TasksFormat: Text, Json);

#[derive(Debug, Clone, Default)]
pub struct TasksOptions {
    /// A table (one row per task, as `python -m asyncio ps`) instead of the tree.
    pub table: bool,
}

/// One pending task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The task object's address (as `asyncio ps` shows `id(task)`).
    pub id: u64,
    pub name: String,
    /// `running`, `ready`, or `awaiting ...`.
    pub state: String,
    /// Its coroutines' frames, innermost first.
    pub frames: Vec<Frame>,
    /// Why the coroutines could not be followed to the innermost.
    pub chain_error: Option<String>,
    /// The tasks it awaits (a task, the tasks of a gather, the tasks of its TaskGroup).
    pub awaits: Vec<u64>,
    /// The tasks that await it.
    pub awaited_by: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessTasks {
    pub pid: i32,
    pub version: String,
    pub asyncio_loaded: bool,
    pub paused: bool,
    /// The tasks changed between two reads, and one read took this many milliseconds, longer
    /// than pyprobe holds a process still: shown as the last read saw them.
    pub moved_ms: Option<f64>,
    /// Milliseconds the read took.
    pub read_ms: f64,
    pub tasks: Vec<Task>,
    pub not_shown: u64,
    pub error: Option<String>,
    /// Cycles of tasks awaiting each other, each as its task ids.
    pub cycles: Vec<Vec<u64>>,
    /// What this version cannot show.
    pub cannot_show: Vec<String>,
}

impl ProcessTasks {
    pub fn task(&self, id: u64) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// What the reader of 3.8-3.13 does not see, said in every output.
fn cannot_show(v: PyVersion) -> Vec<String> {
    let mut out = vec![
        "an await edge made only by a raw callback or by asyncio.shield (only _fut_waiter, gather \
         and TaskGroup edges are seen)"
            .to_string(),
        "finished tasks (as asyncio.all_tasks() leaves them out)".to_string(),
    ];
    if v.minor < 11 {
        out.push(format!(
            "TaskGroup edges (no TaskGroup before 3.11; on {v} gather edges only)"
        ));
    }
    out
}

fn read_list(interp: &mut Interpreter, target: &Target) -> Result<(TaskList, Held)> {
    let mut reader = TaskReader::of(target).ok_or_else(|| unknown(target))?;
    let a = reader.read(interp, target);
    let started = Instant::now();
    let b = reader.read(interp, target);
    let took = started.elapsed();
    if let (Ok(a), Ok(b)) = (&a, &b)
        && a == b
    {
        return Ok((b.clone(), Held::No));
    }
    // Held still no longer than `MAX_HOLD`: a read that takes longer (thousands of tasks) is
    // shown as the last one saw them, and said so.
    if took > MAX_HOLD {
        return Ok((b?, Held::TooLong(took.as_secs_f64() * 1e3)));
    }
    match Paused::stop(interp.pid) {
        Ok(paused) => {
            let list = reader.read(interp, target)?;
            drop(paused);
            Ok((list, Held::Yes))
        }
        Err(e @ Error::NoSuchProcess(_)) => Err(e),
        Err(_) => Ok((b?, Held::No)),
    }
}

/// The longest pyprobe holds a process still to read its tasks consistently.
const MAX_HOLD: Duration = Duration::from_millis(20);

/// Whether the process was held still for the read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Held {
    No,
    Yes,
    /// The tasks changed while they were read, and a read takes this many ms: not held.
    TooLong(f64),
}

/// A version whose task layout pyprobe does not know: which, and what works there.
fn unknown(target: &Target) -> Error {
    Error::Unreadable(crate::cpython::pystate::no_task_layout(target))
}

/// Reads the tasks of a process.
pub fn read(target: &Target) -> Result<ProcessTasks> {
    let started = Instant::now();
    let mut interp = Interpreter::open(target)?;
    let (list, held) = read_list(&mut interp, target)?;
    let names: HashMap<u64, String> = list
        .tasks
        .iter()
        .map(|t| (t.addr, t.name.clone()))
        .collect();
    let name_of = |id: &u64| names.get(id).cloned().unwrap_or_else(|| format!("{id:#x}"));
    // Edges between pending tasks only (a gather keeps its finished tasks).
    let awaits = list.awaits();
    let mut awaited_by: HashMap<u64, BTreeSet<u64>> = HashMap::new();
    for (p, cs) in &awaits {
        for c in cs {
            awaited_by.entry(*c).or_default().insert(*p);
        }
    }
    // The tasks a task awaits in the order they were made where the version keeps it (3.14+:
    // the order of its task lists, as `asyncio pstree` shows them), else of their names.
    let made: HashMap<u64, usize> = list
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.addr, i))
        .collect();
    let in_order = list.in_order;
    let by_name = |ids: &BTreeSet<u64>| {
        let mut v: Vec<u64> = ids.iter().copied().collect();
        if in_order {
            v.sort_by_key(|id| made.get(id).copied());
        } else {
            v.sort_by_key(|id| (names.get(id).cloned(), *id));
        }
        v
    };
    let mut tasks = Vec::new();
    for t in &list.tasks {
        let state = if t.current {
            "running".to_string()
        } else {
            match &t.waiter {
                Waiter::Nothing => "ready".into(),
                Waiter::Task(w) => format!("awaiting task {}", name_of(w)),
                Waiter::Gather(ws) => {
                    let pending: Vec<String> = ws
                        .iter()
                        .filter(|w| names.contains_key(w))
                        .map(name_of)
                        .collect();
                    let done = ws.len() - pending.len();
                    format!(
                        "awaiting gather({}){}",
                        pending.join(", "),
                        if done > 0 {
                            format!(" and {done} done")
                        } else {
                            String::new()
                        }
                    )
                }
                Waiter::Future(ty) => {
                    format!("awaiting a {}", ty.rsplit('.').next().unwrap_or(ty))
                }
            }
        };
        tasks.push(Task {
            id: t.addr,
            name: t.name.clone(),
            state,
            frames: symbolize(&mut interp, &t.frames, false),
            chain_error: t.chain_error.clone(),
            awaits: awaits.get(&t.addr).map(by_name).unwrap_or_default(),
            awaited_by: awaited_by.get(&t.addr).map(by_name).unwrap_or_default(),
        });
    }
    // Where the version keeps no order (a set), by name.
    if !in_order {
        tasks.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    }
    let cycles = find_cycles(&awaits);
    Ok(ProcessTasks {
        pid: target.pid,
        version: target.version_text(),
        asyncio_loaded: list.asyncio_loaded,
        paused: held == Held::Yes,
        moved_ms: match held {
            Held::TooLong(ms) => Some(ms),
            _ => None,
        },
        read_ms: started.elapsed().as_secs_f64() * 1e3,
        tasks,
        not_shown: list.not_shown,
        error: list.error,
        cycles,
        cannot_show: target.version.map(cannot_show).unwrap_or_default(),
    })
}

/// Every cycle of tasks awaiting each other, once each (bounded: each task is left once).
fn find_cycles(awaits: &HashMap<u64, BTreeSet<u64>>) -> Vec<Vec<u64>> {
    let mut cycles: Vec<Vec<u64>> = Vec::new();
    let mut done = BTreeSet::new();
    let mut starts: Vec<u64> = awaits.keys().copied().collect();
    starts.sort();
    for start in starts {
        let mut path = vec![start];
        let mut iters = vec![
            awaits
                .get(&start)
                .map(|s| s.iter().copied().collect::<Vec<_>>()),
        ];
        let mut on_path = BTreeSet::from([start]);
        while let Some(top) = iters.last_mut() {
            let next = top.as_mut().and_then(|v| v.pop());
            match next {
                None => {
                    iters.pop();
                    if let Some(t) = path.pop() {
                        on_path.remove(&t);
                        done.insert(t);
                    }
                }
                Some(n) if on_path.contains(&n) => {
                    let at = path.iter().position(|&p| p == n).unwrap_or(0);
                    let mut c = path[at..].to_vec();
                    let min = c
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, v)| **v)
                        .map(|(i, _)| i);
                    c.rotate_left(min.unwrap_or(0));
                    if !cycles.contains(&c) {
                        cycles.push(c);
                    }
                }
                Some(n) if done.contains(&n) => {}
                Some(n) => {
                    path.push(n);
                    on_path.insert(n);
                    iters.push(awaits.get(&n).map(|s| s.iter().copied().collect()));
                }
            }
        }
    }
    cycles
}

pub fn run(pid: i32, opts: &TasksOptions, dest: Destination) -> Result<()> {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Error::NoSuchProcess(pid));
    }
    check_ptrace(pid)?;
    let w = dest.open()?;
    let target = Target::from_pid(pid)?;
    let tasks = read(&target)?;
    let mut out: Box<dyn Output<Never, ProcessTasks>> = match dest.format_of::<TasksFormat>()? {
        TasksFormat::Json => Box::new(Documents::reports(w, |r, _| json::document(r))),
        TasksFormat::Text => Box::new(text::Text::new(w, opts.table)),
    };
    out.report(&tasks, &Window::default())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_awaiting_each_other_are_one_cycle() {
        let awaits = HashMap::from([
            (1, BTreeSet::from([2])),
            (2, BTreeSet::from([3])),
            (3, BTreeSet::from([1, 4])),
            (5, BTreeSet::from([4])),
        ]);
        assert_eq!(find_cycles(&awaits), vec![vec![1, 2, 3]]);
        assert!(find_cycles(&HashMap::from([(1, BTreeSet::from([2]))])).is_empty());
    }
}
