//! Where CPython's C asyncio (`Modules/_asynciomodule.c`) keeps a task's facts, per version
//! 3.8 and 3.10-3.15 (x86-64, default builds): `TaskObj`'s `fut_state`, `fut_callback0`,
//! `task_fut_waiter`, `task_coro` and `task_name`, and where a coroutine keeps its frame. Each
//! offset was found by reading live tasks of Debian's 3.11.2 and pyenv's 3.8.18, 3.10.13,
//! 3.12.1 and 3.13.0 with ctypes (`id(task.get_coro())`, `id(task._fut_waiter)`, ... among the
//! object's words, and a done task's beside a pending one's for `fut_state`). 3.14+ publish their
//! own (`_Py_AsyncioModuleDebugOffsets`, `AsyncioDebug` here), which give where the tasks are
//! and their name and coroutine; the rest was measured on sid's 3.14.10 and 3.15.2. 3.9 is
//! not measured.
use super::PyVersion;

/// Which module global lists the tasks (`sys.modules['asyncio.tasks']`, the C module's own
/// sets, which asyncio.tasks imports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSet {
    /// 3.8-3.11: `_all_tasks`, a WeakSet of every task.
    AllTasks,
    /// 3.12-3.13: `_scheduled_tasks` (a WeakSet) and `_eager_tasks` (a set).
    ScheduledAndEager,
    /// 3.14+: C tasks are linked into per-thread and per-interpreter lists
    /// (`asyncio_tasks_head`), whose offsets the build publishes (`AsyncioDebug`).
    Lists,
}

/// Where a coroutine keeps its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoroFrame {
    /// 3.8-3.10: `cr_frame`, a pointer to a frame object (`PyFrameObject`).
    Pointer { frame: u64 },
    /// 3.11+: the interpreter frame inside the coroutine (`cr_iframe`), with its state byte
    /// (`cr_frame_state`): it has a frame from `created` to `executing` (finished past them);
    /// suspended in an await (`yield_from`, or 3.11-3.12 any suspended state), what it awaits
    /// is on the top of its value stack (`stack`).
    Embedded {
        iframe: u64,
        frame_state: u64,
        created: i8,
        executing: i8,
        finished: i8,
        yield_from: Option<i8>,
        stack: ValueStack,
    },
}

/// Where the top of an interpreter frame's value stack is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueStack {
    /// 3.11-3.13: `stacktop`, an int index into `localsplus`.
    Index { stacktop: u64, localsplus: u64 },
    /// 3.14+: `stackpointer`, past the top; the awaited is `below` bytes under it.
    Pointer { stackpointer: u64, below: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLayout {
    pub set: TaskSet,
    /// `fut_state`: 0 pending, 1 cancelled, 2 finished (an int).
    pub fut_state: u64,
    /// `fut_callback0`: the first done-callback (a TaskGroup's `_on_task_done`).
    pub fut_callback0: u64,
    pub task_fut_waiter: u64,
    pub task_coro: u64,
    pub task_name: u64,
    pub coro_frame: CoroFrame,
}

/// The task layout of a version; None where pyprobe has none (before 3.8, 3.9, after 3.15).
/// 3.14+ also need the build's `AsyncioDebug` offsets (`AsyncioDebug::of_build`).
pub fn task_layout(v: PyVersion) -> Option<TaskLayout> {
    if v.major != 3 {
        return None;
    }
    let index = ValueStack::Index {
        stacktop: 64,
        localsplus: 72,
    };
    // 3.11-3.14: CREATED is -2 (3.13+: -3), EXECUTING 0, COMPLETED 1; 3.13+ say
    // SUSPENDED_YIELD_FROM (-1) apart from SUSPENDED. 3.15 counts up: CREATED 0, SUSPENDED 1,
    // SUSPENDED_YIELD_FROM 2, EXECUTING 4, COMPLETED 5 (read from live coroutines).
    let embedded = |iframe, created, yield_from, stack| CoroFrame::Embedded {
        iframe,
        frame_state: iframe - 5,
        created,
        executing: 0,
        finished: 1,
        yield_from,
        stack,
    };
    let pointer = |below| ValueStack::Pointer {
        stackpointer: 64,
        below,
    };
    let (set, fut_state, fut_waiter, coro_frame) = match v.minor {
        8 => (TaskSet::AllTasks, 72, 104, CoroFrame::Pointer { frame: 16 }),
        10 => (TaskSet::AllTasks, 88, 152, CoroFrame::Pointer { frame: 16 }),
        11 => (TaskSet::AllTasks, 88, 128, embedded(80, -2, None, index)),
        12 => (
            TaskSet::ScheduledAndEager,
            88,
            128,
            embedded(72, -2, None, index),
        ),
        13 => (
            TaskSet::ScheduledAndEager,
            96,
            112,
            embedded(72, -3, Some(-1), index),
        ),
        14 => (
            TaskSet::Lists,
            104,
            120,
            embedded(72, -3, Some(-1), pointer(8)),
        ),
        15 => (
            TaskSet::Lists,
            104,
            120,
            CoroFrame::Embedded {
                iframe: 72,
                frame_state: 67,
                created: 0,
                executing: 4,
                finished: 5,
                yield_from: Some(2),
                stack: pointer(16),
            },
        ),
        _ => return None,
    };
    Some(TaskLayout {
        set,
        fut_state,
        fut_callback0: 24,
        task_fut_waiter: fut_waiter,
        task_coro: fut_waiter + 8,
        task_name: fut_waiter + 16,
        coro_frame,
    })
}

/// The build's own map of its asyncio structs (3.14+: `_Py_AsyncioModuleDebugOffsets`, the
/// `.AsyncioDebug` section of the `_asyncio` module, or of the interpreter where it is built
/// in), as `Lib/asyncio/tools.py` reads it through `_remote_debugging`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncioDebug {
    pub task_name: u64,
    pub task_awaited_by: u64,
    pub task_coro: u64,
    /// `task_node`: the task's `llist_node` in its thread's list.
    pub task_node: u64,
    /// `PyInterpreterState.asyncio_tasks_head`: tasks of threads that have exited.
    pub interp_tasks_head: u64,
    /// `_PyThreadStateImpl.asyncio_running_task` and `.asyncio_tasks_head`.
    pub thread_running_task: u64,
    pub thread_tasks_head: u64,
}

/// Bytes of `_Py_AsyncioModuleDebugOffsets` (3.14, 3.15): 13 u64s.
pub const ASYNCIO_DEBUG_LEN: usize = 13 * 8;

impl AsyncioDebug {
    /// From the section's bytes: `asyncio_task_object` {size, task_name, task_awaited_by,
    /// task_is_task, task_awaited_by_is_set, task_coro, task_node}, `asyncio_interpreter_state`
    /// {size, asyncio_tasks_head}, `asyncio_thread_state` {size, asyncio_running_loop,
    /// asyncio_running_task, asyncio_tasks_head}. None where the sizes are not sane.
    pub fn parse(b: &[u8]) -> Option<AsyncioDebug> {
        let w = |i: usize| {
            Some(u64::from_le_bytes(
                b.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        let d = AsyncioDebug {
            task_name: w(1)?,
            task_awaited_by: w(2)?,
            task_coro: w(5)?,
            task_node: w(6)?,
            interp_tasks_head: w(8)?,
            thread_running_task: w(11)?,
            thread_tasks_head: w(12)?,
        };
        let (task_size, interp_size, thread_size) = (w(0)?, w(7)?, w(9)?);
        let sane = task_size > 0
            && task_size < 4096
            && [d.task_name, d.task_awaited_by, d.task_coro, d.task_node]
                .iter()
                .all(|&o| o + 8 <= task_size)
            && d.interp_tasks_head < interp_size
            && d.thread_tasks_head < thread_size
            && d.thread_running_task < thread_size;
        sane.then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_have_a_layout_on_3_8_and_3_10_to_3_15() {
        let l = task_layout(PyVersion::new(3, 11)).unwrap();
        assert_eq!(
            (l.task_fut_waiter, l.task_coro, l.task_name),
            (128, 136, 144)
        );
        let l = task_layout(PyVersion::new(3, 13)).unwrap();
        assert_eq!((l.fut_state, l.task_coro), (96, 120));
        assert!(task_layout(PyVersion::new(3, 7)).is_none());
        assert!(task_layout(PyVersion::new(3, 9)).is_none());
        assert!(task_layout(PyVersion::new(3, 16)).is_none());
        let mut b = [0u8; ASYNCIO_DEBUG_LEN];
        for (i, v) in [
            200u64, 136, 96, 112, 113, 128, 184, 9000, 8800, 10000, 9000, 9008, 9016,
        ]
        .iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let d = AsyncioDebug::parse(&b).unwrap();
        assert_eq!((d.task_name, d.task_coro, d.task_node), (136, 128, 184));
        assert_eq!((d.interp_tasks_head, d.thread_tasks_head), (8800, 9016));
        b[0] = 0;
        assert!(AsyncioDebug::parse(&b).is_none());
    }
}
