//! Holding every thread of a process still for as long as it takes to read their stacks, under
//! ptrace (seize and interrupt: no signal the process could see, unlike SIGSTOP), and letting
//! them go on every exit path: on drop, on error and on panic; and if pyprobe is killed, the
//! kernel detaches them itself.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a thread may take to stop (one in an uninterruptible wait takes until it leaves it).
const STOP_WAIT: Duration = Duration::from_secs(2);

pub struct Paused {
    pid: i32,
    /// Every stopped thread, with a signal that arrived meanwhile, to deliver at detach.
    threads: HashMap<i32, i32>,
}

impl Paused {
    /// Stops every thread of `pid`, including threads started while it does so.
    pub fn stop(pid: i32) -> Result<Paused> {
        let mut p = Paused {
            pid,
            threads: HashMap::new(),
        };
        loop {
            let tids = task_ids(pid);
            let new: Vec<i32> = tids
                .into_iter()
                .filter(|t| !p.threads.contains_key(t))
                .collect();
            if new.is_empty() {
                break;
            }
            for tid in new {
                p.stop_thread(tid)?;
            }
        }
        if p.threads.is_empty() {
            return Err(Error::NoSuchProcess(pid));
        }
        Ok(p)
    }

    fn stop_thread(&mut self, tid: i32) -> Result<()> {
        // SAFETY: ptrace requests on a thread of the target, with no memory of ours involved.
        if unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) } == -1 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(()),
                _ => Err(Error::NoAccess {
                    pid: self.pid,
                    why: format!(
                        "cannot stop thread {tid} to read its stack consistently ({e}); another \
                         tracer (a debugger, strace) may hold it"
                    ),
                }),
            };
        }
        self.threads.insert(tid, 0);
        // SAFETY: as above, on a thread we now trace.
        unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            let mut status = 0;
            // SAFETY: waiting on a thread we trace, without blocking.
            let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG) };
            if r == tid {
                if libc::WIFSTOPPED(status) {
                    let sig = libc::WSTOPSIG(status);
                    // A signal-delivery stop (not our interrupt's): the signal is delivered
                    // when the thread is let go.
                    if status >> 16 == 0 && sig != libc::SIGTRAP {
                        self.threads.insert(tid, sig);
                    }
                    return Ok(());
                }
                // It exited meanwhile.
                self.threads.remove(&tid);
                return Ok(());
            }
            if r == -1 {
                self.threads.remove(&tid);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::NoAccess {
                    pid: self.pid,
                    why: format!("thread {tid} did not stop within {STOP_WAIT:?}"),
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The stopped threads.
    pub fn tids(&self) -> impl Iterator<Item = i32> + '_ {
        self.threads.keys().copied()
    }

    /// A stopped thread's FS base: on x86-64 glibc its `pthread_self()`, which CPython keeps as
    /// the thread state's `thread_id`.
    pub fn fs_base(&self, tid: i32) -> Option<u64> {
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: GETREGS writes one user_regs_struct we own, for a thread stopped under us.
        let r = unsafe { libc::ptrace(libc::PTRACE_GETREGS, tid, 0, &mut regs) };
        (r != -1).then_some(regs.fs_base)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        for (&tid, &sig) in &self.threads {
            // SAFETY: detaching a thread we trace lets it run on, with any signal it was owed.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0, sig as libc::c_long) };
        }
    }
}

/// The thread ids of a process, as /proc lists them now.
pub fn task_ids(pid: i32) -> Vec<i32> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    tids
}
