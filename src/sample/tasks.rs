//! record --async: which asyncio task each sampled coroutine belongs to. The kernel counts a
//! sample under the outermost coroutine on its stack (a running task's own, `task_coro`) and a
//! generation of its address, and tells how many frames up to it run in coroutines; here the
//! tasks are read the way `pyprobe tasks` reads them (cpython/pystate/tasks.rs) every 20 ms
//! while tasks come and go or the kernel sees new coroutines (every 200 ms else; never more
//! often than ten times the time a read takes), and at the end, and
//! each generation of a task's coroutine is kept with the task's name and the tasks awaiting
//! it, so a task that finished since is still named. A coroutine whose task is seen finished
//! is taken out of the kernel's table, so that another made at its address (pymalloc reuses
//! them at once) is a new generation, named by its own task. A stack of a task is then its
//! coroutines' frames under `task NAME` frames, the awaiting tasks above it, in place of the
//! event loop's frames.
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, MapFlags};

use super::{Stack, task_frame};
use crate::cpython::pystate::{Interpreter, TaskReader};
use crate::cpython::walk::Frame;
use crate::error::{Error, Result};
use crate::target::Target;
use crate::versions::CoroFrame;

/// The least time between two reads of the tasks while recording; and at least ten times
/// what the last read took (reading the tasks costs pyprobe at most a tenth of a core).
const READ_GAP: Duration = Duration::from_millis(20);
/// How often the tasks are read while no coroutine comes or goes.
const READ_IDLE: Duration = Duration::from_millis(200);
/// Awaiting tasks followed up from a task.
const MAX_PARENTS: usize = 64;
/// Generations remembered; past this the names are forgotten and read again (never while
/// recording a service of fewer tasks).
const MAX_KEPT: usize = 1 << 20;
/// A coroutine pyprobe never saw as a task's, run by the event loop: the task finished between
/// two reads.
pub const FINISHED: &str = "<finished task>";

/// A task as its coroutine's generation is named: the task object, its name and outward the
/// tasks awaiting it.
type Named = (u64, Rc<[String]>);

pub struct AsyncTasks {
    reader: TaskReader,
    target: Target,
    /// Each (coroutine, generation) seen as a task's.
    names: HashMap<(u64, u32), Named>,
    last_read: Option<Instant>,
    /// How long the last read took.
    last_took: Duration,
    /// The last read saw tasks come or go since the one before.
    churn: bool,
    /// The tasks the last read saw.
    last_tasks: Vec<u64>,
    /// The kernel's last generation when the tasks were last read.
    gen_read: u32,
    /// Reads of the tasks, and how long they took in all.
    pub reads: u64,
    pub read_time: Duration,
}

impl AsyncTasks {
    /// The reader for a target, and where a coroutine's frame is inside it (the kernel's
    /// `coro_iframe`); a version without one is refused, naming what works.
    pub fn new(target: &Target) -> Result<(AsyncTasks, u32)> {
        let reader = TaskReader::of(target);
        let iframe = match reader.as_ref().map(|r| r.layout.coro_frame) {
            Some(CoroFrame::Embedded { iframe, .. }) => iframe as u32,
            _ => {
                return Err(Error::Unreadable(format!(
                    "{} (CPython {}): record --async needs CPython 3.11-3.15, where a \
                     coroutine's frame lives in the coroutine; record without --async and \
                     pyprobe tasks --pid {} work on this version",
                    target.interpreter,
                    target.version_text(),
                    target.pid,
                )));
            }
        };
        let reader = reader.expect("matched above");
        Ok((
            AsyncTasks {
                reader,
                target: target.clone(),
                names: HashMap::new(),
                last_read: None,
                last_took: Duration::ZERO,
                churn: false,
                last_tasks: Vec::new(),
                gen_read: 0,
                reads: 0,
                read_time: Duration::ZERO,
            },
            iframe,
        ))
    }

    /// Reads the tasks when due: `force`; the kernel has given a new generation
    /// (`generation`) or the last read saw tasks come or go, and it is `READ_GAP` old; or it
    /// is `READ_IDLE` old. `coros` is the kernel's table of coroutines and their generations.
    pub fn refresh(
        &mut self,
        interp: &mut Interpreter,
        coros: &impl MapCore,
        generation: u32,
        force: bool,
    ) {
        let gap = READ_GAP.max(self.last_took * 10);
        let idle = READ_IDLE.max(gap);
        // A task finished and another started at its coroutine's address gives no new
        // generation until a read sees it: while tasks come and go, read often.
        let due = force
            || self.last_read.is_none_or(|t| {
                let s = t.elapsed();
                s >= idle || (s >= gap && (generation != self.gen_read || self.churn))
            });
        if !due {
            return;
        }
        let started = Instant::now();
        self.last_read = Some(started);
        self.gen_read = generation;
        // A read that fails (the process changing under it, asyncio not yet imported) keeps
        // what earlier reads found; the next read tries again.
        let list = self.reader.read(interp, &self.target);
        self.reads += 1;
        let Ok(list) = list else {
            self.last_took = started.elapsed();
            self.read_time += self.last_took;
            return;
        };
        let names: HashMap<u64, &str> = list
            .tasks
            .iter()
            .map(|t| (t.addr, t.name.as_str()))
            .collect();
        // Each task's one awaiting task shown: of several, the first by name, then address.
        let mut parent: HashMap<u64, u64> = HashMap::new();
        for (p, children) in list.awaits() {
            for c in children {
                let e = parent.entry(c).or_insert(p);
                if (names.get(&p), p) < (names.get(e), *e) {
                    *e = p;
                }
            }
        }
        let mut live: HashMap<u64, Named> = HashMap::new();
        for t in list.tasks.iter().filter(|t| t.coro != 0) {
            let mut chain = vec![t.name.clone()];
            let mut seen = HashSet::from([t.addr]);
            let mut at = t.addr;
            while let Some(&p) = parent.get(&at) {
                if chain.len() > MAX_PARENTS || !seen.insert(p) {
                    break;
                }
                chain.push(names.get(&p).copied().unwrap_or("?").to_string());
                at = p;
            }
            live.insert(t.coro, (t.addr, chain.into()));
        }
        if self.names.len() > MAX_KEPT {
            self.names.clear();
        }
        // Each coroutine the kernel has seen: named by its task while that runs; once the
        // task is gone (finished, or another task's coroutine at its address), out of the
        // kernel's table, so that the next one there is a new generation.
        let mut gone = Vec::new();
        for k in coros.keys() {
            let Ok(coro) = <[u8; 8]>::try_from(k.as_slice()).map(u64::from_ne_bytes) else {
                continue;
            };
            let Ok(Some(v)) = coros.lookup(&k, MapFlags::ANY) else {
                continue;
            };
            let Ok(g) = <[u8; 4]>::try_from(&v[..4]).map(u32::from_ne_bytes) else {
                continue;
            };
            let known = self.names.get(&(coro, g)).map(|n| n.0);
            match (live.get(&coro), known) {
                (Some(n), None) => {
                    self.names.insert((coro, g), n.clone());
                }
                (Some(n), Some(task)) if task == n.0 => {
                    // Renamed, or awaited by another task since.
                    self.names.insert((coro, g), n.clone());
                }
                (_, Some(_)) => gone.push(k),
                (None, None) => {}
            }
        }
        let mut tasks: Vec<u64> = live.values().map(|n| n.0).collect();
        tasks.sort_unstable();
        self.churn = !gone.is_empty() || tasks != self.last_tasks;
        self.last_tasks = tasks;
        for k in gone {
            let _ = coros.delete(&k);
        }
        self.last_took = started.elapsed();
        self.read_time += self.last_took;
    }

    /// A stack as --async shows it: where its outermost coroutine (`coro` of generation
    /// `generation`, `coro_depth` frames from the innermost) is a task's, the coroutines'
    /// frames under the task and the tasks awaiting it; None where the stack is no task's
    /// (shown as it is).
    pub fn task_stack(
        &self,
        stack: &Stack,
        coro: u64,
        generation: u32,
        coro_depth: usize,
    ) -> Option<Stack> {
        if coro == 0 || coro_depth == 0 || coro_depth > stack.frames.len() {
            return None;
        }
        let finished: Rc<[String]>;
        let chain = match self.names.get(&(coro, generation)) {
            Some((_, c)) => c,
            // Never seen as a task's: a task that finished between reads if the event loop
            // ran it (asyncio's Handle._run right above), else a plain generator's.
            None if stack.frames.get(coro_depth).is_some_and(event_loop_runs) => {
                finished = Rc::from(vec![FINISHED.to_string()]);
                &finished
            }
            None => return None,
        };
        Some(compose(stack, coro_depth, chain))
    }
}

/// Whether a frame is the event loop running a callback (asyncio's `Handle._run`, named
/// `_run` before 3.11).
fn event_loop_runs(f: &Frame) -> bool {
    matches!(f.name.as_str(), "_run" | "Handle._run") && f.file.ends_with("asyncio/events.py")
}

/// The coroutines' frames (innermost first) under the task frames, innermost task first; its
/// id a hash of the stack's and the task names (tasks of one name and stack are one stack).
fn compose(stack: &Stack, coro_depth: usize, chain: &[String]) -> Stack {
    let mut frames: Vec<Frame> = stack.frames[..coro_depth].to_vec();
    frames.extend(chain.iter().map(|n| task_frame(n)));
    let mut h = DefaultHasher::new();
    (stack.id, coro_depth, chain).hash(&mut h);
    Stack {
        id: h.finish() | 1 << 63,
        frames,
        truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::frame_label;
    use crate::sample::tests::frame;

    #[test]
    fn the_event_loop_runs_a_callback_in_handle_run_by_either_name() {
        let events = |name| Frame {
            file: "/usr/lib/python3.11/asyncio/events.py".into(),
            ..frame(name, 80)
        };
        assert!(event_loop_runs(&events("Handle._run")));
        assert!(event_loop_runs(&events("_run")));
        assert!(!event_loop_runs(&events("_run_once")));
        assert!(!event_loop_runs(&frame("Handle._run", 80)));
    }

    #[test]
    fn a_task_stack_is_its_coroutines_under_its_tasks() {
        let stack = Stack {
            id: 7,
            frames: vec![
                frame("spin", 5),
                frame("slice", 10),
                frame("serve", 20),
                Frame {
                    file: "/usr/lib/python3.11/asyncio/events.py".into(),
                    ..frame("_run", 80)
                },
                frame("_run_once", 1900),
                frame("main", 3),
            ],
            truncated: false,
        };
        let chain: Vec<String> = vec!["heavy".into(), "server".into(), "main".into()];
        let s = compose(&stack, 3, &chain);
        let labels: Vec<String> = s.frames.iter().rev().map(frame_label).collect();
        assert_eq!(
            labels,
            [
                "task main",
                "task server",
                "task heavy",
                "serve (/w/app.py:20)",
                "slice (/w/app.py:10)",
                "spin (/w/app.py:5)",
            ]
        );
        assert_ne!(s.id, compose(&stack, 3, &chain[1..]).id);
        assert_eq!(s.id, compose(&stack, 3, &chain).id);
    }
}
