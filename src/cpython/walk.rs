//! The stack walker shared by `pyprobe stacks` and the samplers: every thread's frames read
//! at one moment (held still by pause.rs where they move under the read), and frames named.
use std::collections::HashMap;

use crate::cpython::pause::{Paused, task_ids};
use crate::cpython::pystate::{FrameWalk, Interpreter, Local, RawFrame, ThreadList, ThreadState};
use crate::error::{Error, Result};

/// One frame: the function, where it is now, and with --locals its variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub name: String,
    pub file: String,
    pub line: i32,
    /// The def line (`co_firstlineno`).
    pub def_line: i32,
    pub locals: Option<Vec<Local>>,
}

/// A thread state with its frames as read, and its kernel thread id where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawThread {
    pub state: ThreadState,
    pub tid: Option<i32>,
    pub walk: FrameWalk,
}

/// Every thread as one read saw them, and what of the thread list it could not read.
pub type RawThreads = ThreadList<RawThread>;

/// Kernel thread ids by the id the target's pid namespace gives them (NSpid's last field).
pub fn host_tids(pid: i32) -> HashMap<u32, i32> {
    task_ids(pid)
        .into_iter()
        .filter_map(|tid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
            let inner = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|ids| ids.split_whitespace().last()?.parse().ok())
                .unwrap_or(tid as u32);
            Some((inner, tid))
        })
        .collect()
}

/// Every thread's frames as they are now; with `paused`, thread ids come from the threads'
/// FS bases where the version keeps no native id.
fn read_threads(interp: &Interpreter, paused: Option<&Paused>) -> Result<RawThreads> {
    let by_ns = host_tids(interp.pid);
    let by_fs: HashMap<u64, i32> = paused
        .map(|p| p.tids().filter_map(|t| Some((p.fs_base(t)?, t))).collect())
        .unwrap_or_default();
    let list = interp.threads()?;
    let threads = list
        .threads
        .into_iter()
        .map(|state| {
            let tid = match state.native_id {
                Some(n) => Some(*by_ns.get(&n).unwrap_or(&(n as i32))),
                None => by_fs.get(&state.thread_id).copied(),
            };
            Ok(RawThread {
                walk: interp.frames(&state)?,
                state,
                tid,
            })
        })
        .collect::<Result<_>>()?;
    Ok(ThreadList {
        threads,
        not_shown: list.not_shown,
        error: list.error,
    })
}

/// Every thread's stack at one moment: read twice while the process runs, and if the two reads
/// differ (or the version needs the threads' registers), once more with every thread held.
/// Returns whether it held them. Where the threads cannot be held (another tracer, such as a
/// debugger or strace, has them), the last read stands, without thread ids before 3.11.
pub fn take(interp: &Interpreter) -> Result<(RawThreads, bool)> {
    let mut last = None;
    if interp.layout.walk.tstate_native_thread_id.is_some() {
        let (a, b) = (read_threads(interp, None), read_threads(interp, None));
        if let (Ok(a), Ok(b)) = (&a, &b)
            && a == b
        {
            return Ok((b.clone(), false));
        }
        last = Some(b);
    }
    match Paused::stop(interp.pid) {
        Ok(paused) => {
            let threads = read_threads(interp, Some(&paused))?;
            drop(paused);
            Ok((threads, true))
        }
        Err(e @ Error::NoSuchProcess(_)) => Err(e),
        Err(_) => Ok((last.unwrap_or_else(|| read_threads(interp, None))?, false)),
    }
}

/// A thread's kernel name and whether it is on CPU (or runnable) now.
pub fn thread_status(pid: i32, tid: i32) -> (Option<String>, bool) {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap_or_default();
    let running = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('R'));
    (comm, running)
}

/// Names the frames of one thread.
pub fn symbolize(interp: &mut Interpreter, raw: &[RawFrame], locals: bool) -> Vec<Frame> {
    raw.iter()
        .map(|f| match interp.code(f.code) {
            Ok(code) => Frame {
                name: code.name.clone(),
                file: code.file.clone(),
                line: interp.line(f.code, &code, f.instr),
                def_line: code.firstlineno,
                locals: locals.then(|| interp.locals(f, &code).unwrap_or_default()),
            },
            Err(_) => Frame {
                name: format!("<unreadable code object at {:#x}>", f.code),
                file: "?".into(),
                line: 0,
                def_line: 0,
                locals: None,
            },
        })
        .collect()
}
