//! The asyncio tasks of a process, read from its memory (3.8, 3.10-3.15): the task sets the C
//! `_asyncio` module keeps, which `sys.modules['asyncio.tasks']` imports (`_all_tasks` up to
//! 3.11, `_scheduled_tasks` and `_eager_tasks` on 3.12-3.13), or 3.14+'s per-thread and
//! per-interpreter task lists (the build's `AsyncioDebug` offsets); each task's name, state,
//! coroutine chain (each coroutine's frame, following what it awaits to the innermost) and
//! what it waits on (`_fut_waiter`: a task, or a `_GatheringFuture` whose `_children` are
//! the gathered ones), and the TaskGroup that made it. Every walk is bounded; an object that is
//! not what it should be ends that walk, never the read.
use std::collections::{BTreeSet, HashMap, HashSet};

use super::{Interpreter, MAX_INTERPRETERS, RawFrame, why};
use crate::error::Result;
use crate::target::Target;
use crate::versions::objects::{
    LIST_ITEMS, METHOD_SELF, SET_MASK, SET_TABLE, TYPE_BASE, WEAKREF_OBJECT,
};
use crate::versions::{
    ASYNCIO_DEBUG_LEN, AsyncioDebug, CoroFrame, TaskLayout, TaskSet, ValueStack, task_layout,
};

/// At most this many tasks are kept; the rest are counted.
pub const MAX_TASKS: usize = 4096;
/// Coroutines followed from a task's own to the innermost.
pub const MAX_CHAIN: usize = 256;
/// Slots of a set, or items of a list, read at most.
const MAX_SLOTS: u64 = 1 << 16;
/// Base classes followed from a type to `_asyncio.Task`.
const MAX_BASES: usize = 16;
/// Characters of a task's name kept.
const MAX_NAME: u64 = 256;

/// What a pending task waits on (its `_fut_waiter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiter {
    /// Nothing: it is running, or ready to run.
    Nothing,
    /// Another task.
    Task(u64),
    /// `asyncio.gather`: the gathered tasks (coroutines gather wrapped in tasks).
    Gather(Vec<u64>),
    /// Any other future: its type.
    Future(String),
}

/// One task as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTask {
    pub addr: u64,
    pub name: String,
    /// Its coroutine (`task_coro`), the object whose frame runs at the task's steps.
    pub coro: u64,
    /// `fut_state`: 0 pending, 1 cancelled, 2 finished.
    pub state: u32,
    /// The coroutines' frames, innermost first.
    pub frames: Vec<RawFrame>,
    /// Why the chain of coroutines could not be followed to its end.
    pub chain_error: Option<String>,
    pub waiter: Waiter,
    /// The task whose TaskGroup made this one (the group's `_parent_task`).
    pub group_parent: Option<u64>,
    /// The task its loop runs now (`_current_tasks`).
    pub current: bool,
}

/// Every task one read found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskList {
    /// Whether any interpreter has imported asyncio (`asyncio.tasks` in sys.modules).
    pub asyncio_loaded: bool,
    /// Pending tasks (finished ones are left out, as `asyncio.all_tasks()` does), at most
    /// `MAX_TASKS`.
    pub tasks: Vec<RawTask>,
    pub not_shown: u64,
    /// `tasks` are in the order they were made (3.14+'s lists; a set has no order).
    pub in_order: bool,
    /// Why a set of tasks could not be read to its end.
    pub error: Option<String>,
}

/// Where a process's tasks are: its version's task layout and, on 3.14+, the build's
/// `AsyncioDebug` offsets (found once `_asyncio` is loaded). Shared by `pyprobe tasks` and
/// `record --async`.
#[derive(Debug, Clone)]
pub struct TaskReader {
    pub layout: TaskLayout,
    debug: Option<AsyncioDebug>,
}

/// Why pyprobe cannot read a target's tasks: its version has no task layout, and what works.
pub fn no_task_layout(target: &Target) -> String {
    format!(
        "{} (CPython {}): pyprobe reads asyncio tasks on CPython 3.8 and 3.10-3.15, not this \
         version; pyprobe stacks --pid {} works",
        target.interpreter,
        target.version_text(),
        target.pid,
    )
}

impl TaskReader {
    /// None where pyprobe knows no task layout for the target's version.
    pub fn of(target: &Target) -> Option<TaskReader> {
        Some(TaskReader {
            layout: task_layout(target.version?)?,
            debug: None,
        })
    }

    /// One read of every pending task (the process runs on: it may change under the read).
    pub fn read(&mut self, interp: &mut Interpreter, target: &Target) -> Result<TaskList> {
        // 3.14+: where the tasks are, from the build (absent until asyncio is imported).
        if self.layout.set == TaskSet::Lists && self.debug.is_none() {
            self.debug = target
                .mapped_section("_asyncio", ".AsyncioDebug")
                .filter(|&(_, size)| size >= ASYNCIO_DEBUG_LEN as u64)
                .and_then(|(addr, _)| {
                    let b = interp.bytes(addr, ASYNCIO_DEBUG_LEN as u64, "AsyncioDebug");
                    AsyncioDebug::parse(&b.ok()?)
                });
            if let Some(d) = &self.debug {
                self.layout.task_name = d.task_name;
                self.layout.task_coro = d.task_coro;
            }
        }
        interp.tasks(&self.layout, self.debug.as_ref())
    }
}

impl TaskList {
    /// Which pending task awaits which: a task awaited (`_fut_waiter`), the tasks of a gather,
    /// and the tasks of a TaskGroup (awaited by the group's parent task).
    pub fn awaits(&self) -> HashMap<u64, BTreeSet<u64>> {
        let pending: HashSet<u64> = self.tasks.iter().map(|t| t.addr).collect();
        let mut awaits: HashMap<u64, BTreeSet<u64>> = HashMap::new();
        for t in &self.tasks {
            let awaited = match &t.waiter {
                Waiter::Task(w) => std::slice::from_ref(w),
                Waiter::Gather(ws) => ws.as_slice(),
                _ => &[],
            };
            for w in awaited.iter().filter(|w| pending.contains(w)) {
                awaits.entry(t.addr).or_default().insert(*w);
            }
            if let Some(p) = t.group_parent.filter(|p| pending.contains(p)) {
                awaits.entry(p).or_default().insert(t.addr);
            }
        }
        awaits
    }
}

impl Interpreter {
    /// The tasks of every interpreter of the process; 3.14+ with the build's `AsyncioDebug`.
    pub fn tasks(&mut self, l: &TaskLayout, debug: Option<&AsyncioDebug>) -> Result<TaskList> {
        let mut list = TaskList::default();
        let mut found = Vec::new();
        let mut current = HashSet::new();
        let il = self.layout;
        let mut interp = self.u64(self.runtime + il.interpreters_head, "interpreters.head")?;
        for _ in 0..MAX_INTERPRETERS {
            if interp == 0 {
                break;
            }
            let modules = self.u64(interp + il.interp_modules, "sys.modules")?;
            if modules != 0
                && let Err(e) = self.task_sets(l, modules, &mut list, &mut found, &mut current)
            {
                list.error.get_or_insert(why(&e));
            }
            interp = self.u64(interp + il.walk.interp_next, "interp->next")?;
        }
        list.in_order = l.set == TaskSet::Lists;
        if let (TaskSet::Lists, Some(d)) = (l.set, debug)
            && let Err(e) = self.task_lists(d, &mut found, &mut current)
        {
            list.error.get_or_insert(why(&e));
        }
        let mut seen = HashSet::new();
        let mut types = HashMap::new();
        for addr in found {
            if !seen.insert(addr) || !self.is_task(addr, &mut types).unwrap_or(false) {
                continue;
            }
            let Ok(state) = self.u32(addr + l.fut_state, "fut_state") else {
                continue;
            };
            if state != 0 {
                continue;
            }
            if list.tasks.len() >= MAX_TASKS {
                list.not_shown += 1;
                continue;
            }
            match self.task(l, addr, state, &mut types) {
                Ok(mut t) => {
                    t.current = current.contains(&addr);
                    list.tasks.push(t);
                }
                Err(e) => {
                    list.error.get_or_insert(why(&e));
                }
            }
        }
        Ok(list)
    }

    fn task_sets(
        &mut self,
        l: &TaskLayout,
        modules: u64,
        list: &mut TaskList,
        found: &mut Vec<u64>,
        current: &mut HashSet<u64>,
    ) -> Result<()> {
        self.expect(modules, "dict", "sys.modules")?;
        let Some(module) = self.lookup(modules, "asyncio.tasks")? else {
            return Ok(());
        };
        if &*self.type_name(module)? != "module" {
            return Ok(());
        }
        list.asyncio_loaded = true;
        let globals = self.u64(module + 16, "asyncio.tasks.__dict__")?;
        let weak_sets: &[&'static str] = match l.set {
            TaskSet::AllTasks => &["_all_tasks"],
            TaskSet::ScheduledAndEager => &["_scheduled_tasks"],
            TaskSet::Lists => return Ok(()),
        };
        for &name in weak_sets {
            if let Some(ws) = self.lookup(globals, name)?
                && let Some(data) = self.attribute(ws, "data")?
            {
                for r in self.set_items(data)? {
                    if self.type_name(r)?.starts_with("weakref") {
                        found.push(self.u64(r + WEAKREF_OBJECT, "a weakref's object")?);
                    }
                }
            }
        }
        if l.set == TaskSet::ScheduledAndEager
            && let Some(eager) = self.lookup(globals, "_eager_tasks")?
        {
            found.extend(self.set_items(eager)?);
        }
        if let Some(running) = self.lookup(globals, "_current_tasks")?
            && &*self.type_name(running)? == "dict"
        {
            current.extend(self.dict_items(running)?.into_iter().map(|(_, t)| t));
        }
        Ok(())
    }

    /// 3.14+: the tasks linked into each thread's list and each interpreter's (those of
    /// threads that have exited), and each thread's running task.
    fn task_lists(
        &mut self,
        d: &AsyncioDebug,
        found: &mut Vec<u64>,
        current: &mut HashSet<u64>,
    ) -> Result<()> {
        for t in self.threads()?.threads {
            self.linked_tasks(d, t.addr + d.thread_tasks_head, found)?;
            let running = self.u64(t.addr + d.thread_running_task, "asyncio_running_task")?;
            if running != 0 {
                current.insert(running);
            }
        }
        let il = self.layout;
        let mut interp = self.u64(self.runtime + il.interpreters_head, "interpreters.head")?;
        for _ in 0..MAX_INTERPRETERS {
            if interp == 0 {
                break;
            }
            self.linked_tasks(d, interp + d.interp_tasks_head, found)?;
            interp = self.u64(interp + il.walk.interp_next, "interp->next")?;
        }
        Ok(())
    }

    /// The tasks of one circular list (`llist_node` {next, prev}, the head's own node where it
    /// ends), bounded.
    fn linked_tasks(&mut self, d: &AsyncioDebug, head: u64, found: &mut Vec<u64>) -> Result<()> {
        let mut node = self.u64(head, "asyncio_tasks_head.next")?;
        let mut steps = 0;
        while node != 0 && node != head {
            steps += 1;
            if steps > MAX_TASKS * 4 {
                return Err(super::endless(self.pid, "task_node.next", node));
            }
            found.push(node - d.task_node);
            node = self.u64(node, "task_node.next")?;
        }
        Ok(())
    }

    /// The items of a set (`PySetObject`'s table), empty and deleted slots left out.
    fn set_items(&mut self, set: u64) -> Result<Vec<u64>> {
        let ty = self.type_name(set)?;
        if &*ty != "set" {
            return Ok(Vec::new());
        }
        let mask = self.u64(set + SET_MASK, "set mask")?;
        let table = self.u64(set + SET_TABLE, "set table")?;
        let slots = (mask + 1).min(MAX_SLOTS);
        let raw = self.bytes(table, slots * 16, "set entries")?;
        let mut out = Vec::new();
        for e in raw.chunks_exact(16) {
            let key = u64::from_le_bytes(e[..8].try_into().expect("8"));
            // A deleted slot holds the dummy key, of its own type.
            if key != 0 && !self.type_name(key)?.contains("dummy") {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Whether an object is a C task (`_asyncio.Task` or a subclass of it).
    fn is_task(&mut self, obj: u64, types: &mut HashMap<u64, bool>) -> Result<bool> {
        let ty = self.u64(obj + 8, "ob_type")?;
        if let Some(&t) = types.get(&ty) {
            return Ok(t);
        }
        let mut at = ty;
        let mut is = false;
        for _ in 0..MAX_BASES {
            if at == 0 {
                break;
            }
            if &*self.type_object_name(at)? == "_asyncio.Task" {
                is = true;
                break;
            }
            at = self.u64(at + TYPE_BASE, "tp_base")?;
        }
        types.insert(ty, is);
        Ok(is)
    }

    fn task(
        &mut self,
        l: &TaskLayout,
        addr: u64,
        state: u32,
        types: &mut HashMap<u64, bool>,
    ) -> Result<RawTask> {
        let name_obj = self.u64(addr + l.task_name, "task_name")?;
        let name = self.task_name(name_obj).unwrap_or_else(|_| "?".into());
        let coro = self.u64(addr + l.task_coro, "task_coro")?;
        let mut frames = Vec::new();
        let chain_error = match self.coro_chain(l, coro, &mut frames) {
            Ok(()) => None,
            Err(e) => Some(why(&e)),
        };
        frames.reverse();
        let waiter = self.u64(addr + l.task_fut_waiter, "task_fut_waiter")?;
        let waiter = self.waiter(waiter, types).unwrap_or(Waiter::Nothing);
        let group_parent = self.group_parent(l, addr).unwrap_or(None);
        Ok(RawTask {
            addr,
            name,
            coro,
            state,
            frames,
            chain_error,
            waiter,
            group_parent,
            current: false,
        })
    }

    /// A task's name: a str, or (3.12+, until someone asks for it) the number of `Task-N`.
    fn task_name(&mut self, obj: u64) -> Result<String> {
        if obj == 0 {
            return Ok("?".into());
        }
        if let Some((t, _)) = self.str_text(obj, MAX_NAME)? {
            return Ok(t);
        }
        Ok(match self.int_value(obj)? {
            Some(n) => format!("Task-{n}"),
            None => "?".into(),
        })
    }

    /// The frames of a coroutine and of what it awaits, outermost first, to the innermost
    /// coroutine (the one that awaits a future, or runs).
    fn coro_chain(&mut self, l: &TaskLayout, mut coro: u64, out: &mut Vec<RawFrame>) -> Result<()> {
        let il = self.layout;
        for _ in 0..MAX_CHAIN {
            if coro == 0 || !matches!(&*self.type_name(coro)?, "coroutine" | "generator") {
                return Ok(());
            }
            let next = match l.coro_frame {
                CoroFrame::Embedded {
                    iframe,
                    frame_state,
                    created,
                    executing,
                    finished,
                    yield_from,
                    stack,
                } => {
                    let state = self.bytes(coro + frame_state, 1, "cr_frame_state")?[0] as i8;
                    if state >= finished {
                        return Ok(());
                    }
                    let frame = coro + iframe;
                    out.push(self.raw_frame(frame)?);
                    if state == created
                        || state == executing
                        || yield_from.is_some_and(|y| y != state)
                    {
                        return Ok(());
                    }
                    let slot = match stack {
                        ValueStack::Index {
                            stacktop,
                            localsplus,
                        } => {
                            let top = self.u32(frame + stacktop, "frame stacktop")? as i32;
                            if top <= 0 || top > 1 << 20 {
                                return Ok(());
                            }
                            frame + localsplus + 8 * (top as u64 - 1)
                        }
                        ValueStack::Pointer {
                            stackpointer,
                            below,
                        } => {
                            let sp = self.u64(frame + stackpointer, "frame stackpointer")?;
                            if sp < frame + below {
                                return Ok(());
                            }
                            sp - below
                        }
                    };
                    self.u64(slot, "the awaited")? & !il.row.tag_mask
                }
                CoroFrame::Pointer { frame } => {
                    let f = self.u64(coro + frame, "cr_frame")?;
                    if f == 0 {
                        return Ok(());
                    }
                    out.push(self.raw_frame(f)?);
                    // 3.8: f_stacktop, NULL while running; 3.10: f_valuestack and f_stackdepth.
                    if il.row.version.minor <= 9 {
                        let top = self.u64(f + 72, "f_stacktop")?;
                        if top == 0 {
                            return Ok(());
                        }
                        self.u64(top - 8, "the awaited")?
                    } else {
                        let stack = self.u64(f + 64, "f_valuestack")?;
                        let depth = self.u32(f + 80, "f_stackdepth")? as i32;
                        if depth <= 0 || depth > 1 << 20 {
                            return Ok(());
                        }
                        self.u64(stack + 8 * (depth as u64 - 1), "the awaited")?
                    }
                }
            };
            coro = next;
        }
        Ok(())
    }

    fn raw_frame(&self, frame: u64) -> Result<RawFrame> {
        let l = &self.layout;
        Ok(RawFrame {
            addr: frame,
            code: self.u64(frame + l.row.frame_code, "a coroutine's code")? & !l.row.tag_mask,
            instr: self.u64(frame + l.walk.frame_instr, "a coroutine's instruction")?,
        })
    }

    fn waiter(&mut self, obj: u64, types: &mut HashMap<u64, bool>) -> Result<Waiter> {
        if obj == 0 {
            return Ok(Waiter::Nothing);
        }
        if self.is_task(obj, types)? {
            return Ok(Waiter::Task(obj));
        }
        let ty = self.type_name(obj)?;
        if ty.ends_with("_GatheringFuture")
            && let Some(children) = self.attribute(obj, "_children")?
            && &*self.type_name(children)? == "list"
        {
            let n = self.u64(children + 16, "list length")?.min(MAX_SLOTS);
            let items = self.u64(children + LIST_ITEMS, "list items")?;
            let raw = self.bytes(items, n * 8, "list items")?;
            let mut tasks = Vec::new();
            for c in raw.chunks_exact(8) {
                let c = u64::from_le_bytes(c.try_into().expect("8"));
                if c != 0 && self.is_task(c, types)? {
                    tasks.push(c);
                }
            }
            return Ok(Waiter::Gather(tasks));
        }
        Ok(Waiter::Future(ty.to_string()))
    }

    /// The task whose TaskGroup made this one: the group's `_on_task_done` is the task's first
    /// done-callback, a bound method of the group.
    fn group_parent(&mut self, l: &TaskLayout, task: u64) -> Result<Option<u64>> {
        let cb = self.u64(task + l.fut_callback0, "fut_callback0")?;
        if cb == 0 || &*self.type_name(cb)? != "method" {
            return Ok(None);
        }
        let group = self.u64(cb + METHOD_SELF, "im_self")?;
        if group == 0 || &*self.type_name(group)? != "TaskGroup" {
            return Ok(None);
        }
        self.attribute(group, "_parent_task")
    }
}

#[cfg(test)]
mod tests {
    use super::super::own_interpreter;
    use super::*;

    fn debug(task_node: u64) -> AsyncioDebug {
        AsyncioDebug {
            task_name: 0,
            task_awaited_by: 0,
            task_coro: 0,
            task_node,
            interp_tasks_head: 0,
            thread_running_task: 0,
            thread_tasks_head: 0,
        }
    }

    /// A circular list in this process's memory, read as a target's: each node's `next` at its
    /// start, the tasks `task_node` bytes before their nodes.
    #[test]
    fn a_task_list_is_read_to_its_head_and_a_cycle_ends_it() {
        let mut nodes = vec![[0u64; 2]; 4];
        let at = |nodes: &Vec<[u64; 2]>, i: usize| nodes.as_ptr() as u64 + 16 * i as u64;
        for i in 0..4 {
            nodes[i][0] = at(&nodes, (i + 1) % 4);
        }
        let head = at(&nodes, 0);
        let mut found = Vec::new();
        own_interpreter()
            .linked_tasks(&debug(8), head, &mut found)
            .unwrap();
        assert_eq!(found, [1, 2, 3].map(|i| at(&nodes, i) - 8));
        // A torn list: node 3 points back to node 1, never to the head.
        nodes[3][0] = at(&nodes, 1);
        let mut found = Vec::new();
        let err = own_interpreter()
            .linked_tasks(&debug(8), head, &mut found)
            .unwrap_err();
        assert!(err.to_string().contains("a cycle"), "{err}");
        assert_eq!(found.len(), MAX_TASKS * 4);
        // An empty list's head points at itself (or, never initialized, is 0).
        nodes[0][0] = head;
        let mut found = Vec::new();
        own_interpreter()
            .linked_tasks(&debug(8), head, &mut found)
            .unwrap();
        assert!(found.is_empty());
    }
}
