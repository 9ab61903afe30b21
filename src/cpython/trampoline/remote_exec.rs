//! PEP 768 remote execution spoken from outside (CPython 3.14+): ask one thread to run a script
//! file at its next safe point, and withdraw the request while the thread has not taken it. The
//! protocol is CPython's own (`Python/remote_debugging.c`).
use super::memory;
use crate::error::{Error, Result};
use crate::target::Target;
use crate::versions::DebuggerOffsets;

/// `_PY_EVAL_PLEASE_STOP_BIT` of `eval_breaker` (3.13-3.15): sends the eval loop into
/// `_Py_HandlePending`, which runs a pending remote-debugger request.
const PLEASE_STOP: u8 = 1 << 5;

/// A request written into one thread state; withdrawn when dropped unless the thread took it.
pub struct Request<'a> {
    target: &'a Target,
    /// Address of the thread's `debugger_pending_call`.
    pending: u64,
}

impl<'a> Request<'a> {
    /// Asks the thread whose state is at `tstate` to run the script at `path` (as the target
    /// sees it), in the protocol's order: path, pending flag, eval-breaker bit.
    pub fn send(
        target: &'a Target,
        d: &DebuggerOffsets,
        tstate: u64,
        path: &str,
    ) -> Result<Request<'a>> {
        let pid = target.pid;
        let support = tstate + d.remote_debugger_support;
        let pending = support + d.debugger_pending_call;
        let mut path_bytes = path.as_bytes().to_vec();
        path_bytes.push(0);
        if path_bytes.len() as u64 > d.debugger_script_path_size {
            return Err(Error::TrampolineUnavailable {
                pid,
                why: format!(
                    "the script path {path} is longer than the target's {} bytes",
                    d.debugger_script_path_size
                ),
            });
        }
        // Overwriting the path of a request in flight would run our script for someone else's.
        if memory::read_i32(target, pending, "debugger_pending_call")? != 0 {
            return Err(Error::TrampolineUnavailable {
                pid,
                why: "another debugger's request to run a script is pending in its main thread; \
                      retry in a moment"
                    .into(),
            });
        }

        // The thread copies the path only once it sees the flag, so the path goes first.
        let script_path = support + d.debugger_script_path;
        memory::write(pid, script_path, &path_bytes, "debugger_script_path")?;
        memory::write(pid, pending, &1i32.to_le_bytes(), "debugger_pending_call")?;
        let request = Request { target, pending };

        // A read-modify-write from outside, unavoidably racy: a bit another thread sets between
        // the two calls is lost (a signal or a GC noticed late, a GIL drop asked for again).
        // Two back-to-back system calls keep the window at microseconds, and writing only the
        // low byte (the event bits) leaves the instrumentation version in the upper bits alone,
        // where CPython's own 8-byte write-back could restore a stale one. Stopping the target
        // would close the window, but a parent waiting with WUNTRACED would see the stop.
        let breaker = tstate + d.eval_breaker;
        let bits = memory::read_byte(pid, breaker, "eval_breaker")?;
        if bits & PLEASE_STOP == 0 {
            memory::write(pid, breaker, &[bits | PLEASE_STOP], "eval_breaker")?;
        }
        Ok(request)
    }

    /// Withdraws the request unless the thread took it already; says whether it had. A thread
    /// takes a request by clearing the flag before it opens the script.
    pub fn withdraw(&self) -> Result<bool> {
        if memory::read_i32(self.target, self.pending, "debugger_pending_call")? == 0 {
            return Ok(true);
        }
        memory::write(
            self.target.pid,
            self.pending,
            &0i32.to_le_bytes(),
            "debugger_pending_call",
        )?;
        Ok(false)
    }
}

impl Drop for Request<'_> {
    /// A request left behind would have the thread open a script that is gone by then.
    fn drop(&mut self) {
        let _ = self.withdraw();
    }
}
