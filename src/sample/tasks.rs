//! record --async: which asyncio task each sampled coroutine belongs to. The kernel counts a
//! sample under the outermost coroutine on its stack (a running task's own, `task_coro`) and
//! tells how many frames up to it run in coroutines; here the tasks are read the way `pyprobe
//! tasks` reads them (cpython/pystate/tasks.rs), a few times a second while recording and once
//! at the end, and each task's coroutine is kept with its name and the tasks awaiting it, so a
//! task that finished since is still named. A stack of a task is then its coroutines' frames
//! under `task NAME` frames, the awaiting tasks above it, in place of the event loop's frames.
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Stack, task_frame};
use crate::cpython::pystate::{Interpreter, TaskReader};
use crate::cpython::walk::Frame;
use crate::error::{Error, Result};
use crate::target::Target;
use crate::versions::CoroFrame;

/// How often the tasks are read while recording.
const READ_EVERY: Duration = Duration::from_millis(200);
/// Awaiting tasks followed up from a task.
const MAX_PARENTS: usize = 64;
/// Coroutines remembered; past this the oldest reads' are forgotten (never while recording a
/// service of fewer live tasks).
const MAX_KEPT: usize = 1 << 20;
/// A coroutine pyprobe never saw as a task's, run by the event loop: the task finished between
/// two reads.
pub const FINISHED: &str = "<finished task>";

pub struct AsyncTasks {
    reader: TaskReader,
    target: Target,
    /// Each task's coroutine: the task's name, then those of the tasks awaiting it, outward.
    chains: HashMap<u64, Rc<[String]>>,
    last_read: Option<Instant>,
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
                chains: HashMap::new(),
                last_read: None,
            },
            iframe,
        ))
    }

    /// Reads the tasks if the last read is old enough (`force`: now).
    pub fn refresh(&mut self, interp: &mut Interpreter, force: bool) {
        if !force && self.last_read.is_some_and(|t| t.elapsed() < READ_EVERY) {
            return;
        }
        self.last_read = Some(Instant::now());
        // A read that fails (the process changing under it, asyncio not yet imported) keeps
        // what earlier reads found; the next read tries again.
        let Ok(list) = self.reader.read(interp, &self.target) else {
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
        if self.chains.len() > MAX_KEPT {
            self.chains.clear();
        }
        for t in &list.tasks {
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
            if t.coro != 0 {
                self.chains.insert(t.coro, chain.into());
            }
        }
    }

    /// A stack as --async shows it: where its outermost coroutine (`coro`, `coro_depth`
    /// frames from the innermost) is a task's, the coroutines' frames under the task and the
    /// tasks awaiting it; None where the stack is no task's (shown as it is).
    pub fn task_stack(&self, stack: &Stack, coro: u64, coro_depth: usize) -> Option<Stack> {
        if coro == 0 || coro_depth == 0 || coro_depth > stack.frames.len() {
            return None;
        }
        let finished: Rc<[String]>;
        let chain = match self.chains.get(&coro) {
            Some(c) => c,
            // Never seen as a task's: a task that finished between reads if the event loop
            // ran it (asyncio's Handle._run right above), else a plain generator's.
            None if stack
                .frames
                .get(coro_depth)
                .is_some_and(|f| f.name == "_run" && f.file.ends_with("asyncio/events.py")) =>
            {
                finished = Rc::from(vec![FINISHED.to_string()]);
                &finished
            }
            None => return None,
        };
        Some(compose(stack, coro_depth, chain))
    }
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
