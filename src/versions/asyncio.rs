//! Where CPython's C asyncio (`Modules/_asynciomodule.c`) keeps a task's facts, per version
//! 3.8-3.13 (x86-64, default builds): `TaskObj`'s `fut_state`, `fut_callback0`,
//! `task_fut_waiter`, `task_coro` and `task_name`, and where a coroutine keeps its frame. Each
//! offset was found by reading live tasks of Debian's 3.11.2 and pyenv's 3.8.18, 3.10.13,
//! 3.12.1 and 3.13.0 with ctypes (`id(task.get_coro())`, `id(task._fut_waiter)`, ... among the
//! object's words), and agrees with the struct in that version's source. 3.14+ publish their
//! own (`_Py_AsyncioModuleDebugOffsets`): not read here yet; 3.9 is not measured.
use super::PyVersion;

/// Which module global lists the tasks (`sys.modules['asyncio.tasks']`, the C module's own
/// sets, which asyncio.tasks imports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSet {
    /// 3.8-3.11: `_all_tasks`, a WeakSet of every task.
    AllTasks,
    /// 3.12-3.13: `_scheduled_tasks` (a WeakSet) and `_eager_tasks` (a set).
    ScheduledAndEager,
}

/// Where a coroutine keeps its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoroFrame {
    /// 3.8-3.10: `cr_frame`, a pointer to a frame object (`PyFrameObject`).
    Pointer { frame: u64 },
    /// 3.11+: the interpreter frame inside the coroutine (`cr_iframe`), with its state byte
    /// (`cr_frame_state`: negative while it has not finished; `created` before its first
    /// step), and the frame's value stack (`stacktop`, an int, and `localsplus`): a coroutine
    /// suspended in an await has what it awaits on the top of its stack.
    Embedded {
        iframe: u64,
        frame_state: u64,
        created: i8,
        stacktop: u64,
        localsplus: u64,
    },
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

/// `PyTypeObject.tp_base`, `PyWeakReference.wr_object`, `PyMethodObject.im_self`,
/// `PySetObject.mask` and `.table`, `PyListObject.ob_item` (3.8-3.15, x86-64).
pub const TYPE_BASE: u64 = 256;
pub const WEAKREF_OBJECT: u64 = 16;
pub const METHOD_SELF: u64 = 24;
pub const SET_MASK: u64 = 32;
pub const SET_TABLE: u64 = 40;
pub const LIST_ITEMS: u64 = 24;

/// The task layout of a version; None where pyprobe has none (before 3.8, 3.14+).
pub fn task_layout(v: PyVersion) -> Option<TaskLayout> {
    if v.major != 3 {
        return None;
    }
    let embedded = |iframe, frame_state, created| CoroFrame::Embedded {
        iframe,
        frame_state,
        created,
        stacktop: 64,
        localsplus: 72,
    };
    let (set, fut_state, fut_waiter, coro_frame) = match v.minor {
        8 => (TaskSet::AllTasks, 72, 104, CoroFrame::Pointer { frame: 16 }),
        10 => (TaskSet::AllTasks, 88, 152, CoroFrame::Pointer { frame: 16 }),
        11 => (TaskSet::AllTasks, 88, 128, embedded(80, 75, -2)),
        12 => (TaskSet::ScheduledAndEager, 88, 128, embedded(72, 67, -2)),
        13 => (TaskSet::ScheduledAndEager, 96, 112, embedded(72, 67, -3)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_have_a_layout_on_3_8_to_3_13() {
        let l = task_layout(PyVersion::new(3, 11)).unwrap();
        assert_eq!(
            (l.task_fut_waiter, l.task_coro, l.task_name),
            (128, 136, 144)
        );
        let l = task_layout(PyVersion::new(3, 13)).unwrap();
        assert_eq!((l.fut_state, l.task_coro), (96, 120));
        assert!(task_layout(PyVersion::new(3, 7)).is_none());
        assert!(task_layout(PyVersion::new(3, 14)).is_none());
    }
}
