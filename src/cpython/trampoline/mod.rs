//! CPython's perf trampoline (3.12+) seen from outside: whether it is on in a running process,
//! and switching it on in a running 3.14+ process through PEP 768 remote execution.
mod memory;
mod remote_exec;
mod script;

use std::fs;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::target::Target;
use crate::versions::{DebugOffsets, DebuggerOffsets, InterpreterLayout, PyVersion};
use remote_exec::Request;
use script::ScriptFiles;

/// Whether the perf trampoline is on in a process's main interpreter.
///
/// The trampoline is on when the main interpreter's `eval_frame`, the PEP 523 frame-evaluation
/// hook, holds CPython's `py_trampoline_evaluator`; the hook is NULL by default (3.11+).
/// Other PEP 523 users set the hook too: TorchDynamo (`torch.compile`), pydevd's
/// frame-evaluation mode, formerly Pyjion and Cinder. Their evaluators live in extension
/// modules, so a hook outside the interpreter file is not the trampoline (stripped builds do not
/// name `py_trampoline_evaluator`, and CPython installs no other evaluator of its own). A hook
/// linked into the interpreter file itself, by an application embedding a static libpython,
/// would pass for the trampoline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrampolineState {
    /// Python frames run through per-function trampolines that perf and stack walkers can name.
    Active,
    /// The default evaluator runs.
    Inactive,
    /// pyprobe cannot tell, and why.
    Unknown(String),
}

/// How long the main thread has to take a request: a busy one takes it within milliseconds.
pub const WAIT: Duration = Duration::from_secs(5);
/// Between two looks at the script's status.
const POLL: Duration = Duration::from_millis(2);
/// After a withdrawal: a thread that took the request at that very moment still runs the script.
const GRACE: Duration = Duration::from_millis(200);

/// Whether the perf trampoline is on in the target's main interpreter: Unknown before 3.12, for
/// a build pyprobe cannot read, and under a foreign PEP 523 hook; an error only when the
/// process cannot be read at all (gone, not ours to read).
pub fn state(target: &Target) -> Result<TrampolineState> {
    let on = MainInterpreter::find(target).and_then(|main| main.trampoline_on());
    match on {
        Ok(true) => Ok(TrampolineState::Active),
        Ok(false) => Ok(TrampolineState::Inactive),
        Err(Error::TrampolineUnavailable { why, .. }) => Ok(TrampolineState::Unknown(why)),
        Err(e) => Err(e),
    }
}

/// Switches the perf trampoline on in a running CPython 3.14+ by having its main thread run a
/// script (PEP 768), waiting up to `WAIT` for it; does nothing when the trampoline is on.
/// `announce` runs once every check has passed, just before the process is written to.
pub fn activate(target: &Target, announce: impl FnOnce()) -> Result<()> {
    activate_within(target, WAIT, announce)
}

/// `activate`, with the time the main thread has to take the request.
///
/// Once on, the trampoline stays on until the process exits: CPython 3.13 and 3.14 crash when
/// it is switched on a second time, or off and on again (python/cpython#146522), so pyprobe
/// never switches it off, and refuses a process that had it on before. An application that
/// later calls `sys.activate_stack_trampoline` itself makes that second switch.
pub fn activate_within(target: &Target, wait: Duration, announce: impl FnOnce()) -> Result<()> {
    let main = MainInterpreter::find(target)?;
    if main.trampoline_on()? {
        return Ok(());
    }
    let (d, tstate) = main.request_thread()?;
    announce();
    // Dropped in reverse order: the request is withdrawn before the files go.
    let files = ScriptFiles::create(target)?;
    let request = Request::send(target, &d, tstate, &files.script)?;
    main.await_script(&files, &request, wait)
}

fn unavailable(target: &Target, why: impl Into<String>) -> Error {
    Error::TrampolineUnavailable {
        pid: target.pid,
        why: why.into(),
    }
}

/// Exported by every build; its first instruction reads `interp->eval_frame`.
const GET_EVAL_FRAME: &str = "_PyInterpreterState_GetEvalFrameFunc";

/// `endbr64`, which CET builds put first in every function.
const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// `offsetof(PyInterpreterState, eval_frame)` from the accessor's first instruction,
/// `mov disp(%rdi),%rax`: `48 8b 87 disp32` in every build measured (3.12.1, 3.13.0, Debian's
/// 3.13 to 3.15), `48 8b 47 disp8` for an offset below 128.
fn eval_frame_offset(code: &[u8]) -> Option<u64> {
    let code = code.strip_prefix(&ENDBR64[..]).unwrap_or(code);
    let disp = match *code {
        [0x48, 0x8b, 0x87, a, b, c, d, ..] => i64::from(i32::from_le_bytes([a, b, c, d])),
        [0x48, 0x8b, 0x47, d, ..] => i64::from(d as i8),
        _ => return None,
    };
    u64::try_from(disp).ok()
}

/// Where a build keeps its interpreters: `_PyRuntime.interpreters.head`, `interp->id` and
/// `interp->next`.
#[derive(Debug, Clone, Copy)]
struct InterpreterList {
    head: u64,
    id: u64,
    next: u64,
}

/// Bounds the walk of a list read from a live process.
const MAX_INTERPRETERS: usize = 1024;

/// A target's main interpreter (id 0), and where its `eval_frame` is.
struct MainInterpreter<'a> {
    target: &'a Target,
    version: PyVersion,
    /// Run-time address of `_PyRuntime`.
    runtime: u64,
    /// The build's debug offsets (3.13+).
    offsets: Option<DebugOffsets>,
    /// Run-time address of the main interpreter's `PyInterpreterState`.
    interp: u64,
    /// `offsetof(PyInterpreterState, eval_frame)`.
    eval_frame: u64,
}

impl<'a> MainInterpreter<'a> {
    /// Fails with `TrampolineUnavailable` where the build or the process gives no answer.
    fn find(target: &'a Target) -> Result<MainInterpreter<'a>> {
        let Some(version) = target.version else {
            return Err(unavailable(target, "its CPython version is unknown"));
        };
        if version < PyVersion::new(3, 12) {
            return Err(unavailable(
                target,
                format!("CPython {version} has no perf trampoline (it came in 3.12)"),
            ));
        }
        let eval_frame = target
            .elf
            .symbol_info(GET_EVAL_FRAME)
            .and_then(|s| eval_frame_offset(&s.head))
            .ok_or_else(|| {
                unavailable(
                    target,
                    format!("{GET_EVAL_FRAME} is missing or not the code pyprobe knows"),
                )
            })?;
        let runtime = target
            .elf
            .symbol_info("_PyRuntime")
            .ok_or_else(|| unavailable(target, "its interpreter file exports no _PyRuntime"))?;
        let offsets = DebugOffsets::parse(&runtime.head);
        // The interpreters' list from the layout table: 3.12's row (it has no debug offsets),
        // 3.13+'s build's own offsets laid over their rows.
        let layout = InterpreterLayout::of(version, offsets.as_ref()).ok_or_else(|| {
            unavailable(
                target,
                format!("pyprobe does not know the debug offsets of CPython {version}"),
            )
        })?;
        let list = InterpreterList {
            head: layout.interpreters_head,
            id: layout.walk.interp_id,
            next: layout.walk.interp_next,
        };
        let runtime = target.runtime_addr(runtime.addr);
        let interp = main_interpreter(target, runtime, list)?;
        Ok(MainInterpreter {
            target,
            version,
            runtime,
            offsets,
            interp,
            eval_frame,
        })
    }

    /// Whether `eval_frame` holds the trampoline; `TrampolineUnavailable` for a foreign hook.
    fn trampoline_on(&self) -> Result<bool> {
        let at = self.interp + self.eval_frame;
        let hook = memory::read_u64(self.target, at, "interp->eval_frame")?;
        if hook == 0 {
            return Ok(false);
        }
        if in_interpreter_file(self.target, hook) {
            return Ok(true);
        }
        Err(unavailable(
            self.target,
            format!(
                "its eval_frame holds a frame evaluator at {hook:#x} outside CPython (a PEP 523 \
                 user such as a debugger or torch.compile), which excludes the trampoline"
            ),
        ))
    }

    /// Every refusal that comes before anything is written; the remote-debugging offsets and
    /// the main thread's state to send the request to, otherwise.
    fn request_thread(&self) -> Result<(DebuggerOffsets, u64)> {
        let target = self.target;
        let pid = target.pid;
        if self.version < PyVersion::new(3, 14) {
            return Err(Error::RemoteExecUnsupported {
                pid,
                version: self.version.to_string(),
            });
        }
        let Some((o, d)) = self.offsets.and_then(|o| Some((o, o.debugger_support?))) else {
            return Err(unavailable(
                target,
                format!(
                    "pyprobe does not know where CPython {} keeps its remote-debugging fields",
                    self.version
                ),
            ));
        };
        // The operator's opt-out.
        let enabled = self.interp + d.remote_debugging_enabled;
        if memory::read_i32(target, enabled, "config.remote_debug")? != 1 {
            return Err(Error::RemoteDebugDisabled { pid });
        }
        if was_on_before(target) {
            return Err(unavailable(
                target,
                "it had the trampoline on before and switched it off (its perf map is there), \
                 and switching it on again can crash CPython (python/cpython#146522): restart \
                 it with PYTHONPERFSUPPORT=1",
            ));
        }
        let finalizing = self.runtime + o.runtime_state.finalizing;
        if memory::read_u64(target, finalizing, "_PyRuntime._finalizing")? != 0 {
            return Err(unavailable(target, "it is shutting down"));
        }
        let tstate = match o.interpreter_state.threads_main {
            Some(at) => memory::read_u64(target, self.interp + at, "threads.main")?,
            None => 0,
        };
        if tstate == 0 {
            return Err(unavailable(
                target,
                "its main thread has no thread state (starting or exiting)",
            ));
        }
        // A thread state that does not point back would mean wrong offsets: write nothing then.
        let back = memory::read_u64(target, tstate + o.thread_state.interp, "tstate->interp")?;
        if back != self.interp {
            return Err(unavailable(
                target,
                format!("its main thread state at {tstate:#x} is not its main interpreter's"),
            ));
        }
        Ok((d, tstate))
    }

    /// Waits for the script's status; withdraws the request when the main thread has not
    /// taken it within `wait`.
    fn await_script(&self, files: &ScriptFiles, request: &Request, wait: Duration) -> Result<()> {
        let pid = self.target.pid;
        let deadline = Instant::now() + wait;
        let taken = loop {
            if let Some(status) = files.status() {
                return self.confirm(&status);
            }
            if crate::target::memory::gone(pid) {
                return Err(Error::NoSuchProcess(pid));
            }
            if Instant::now() >= deadline {
                break request.withdraw()?;
            }
            thread::sleep(POLL);
        };
        let grace_end = Instant::now() + GRACE;
        while Instant::now() < grace_end {
            if let Some(status) = files.status() {
                return self.confirm(&status);
            }
            thread::sleep(POLL);
        }
        // The script may have switched the trampoline on and failed only to say so (a /tmp
        // with room for the perf map but not for the status file): the process is the truth.
        if self.trampoline_on().unwrap_or(false) {
            return Ok(());
        }
        if taken {
            return Err(Error::TrampolineFailed {
                pid,
                why: "its main thread took the request but reported nothing, and the trampoline \
                      is off (an audit hook or an io.open_code hook can refuse the script; its \
                      stderr may say why)"
                    .into(),
            });
        }
        Err(Error::MainThreadBlocked { pid, waited: wait })
    }

    /// Reads what the activation script reported, and checks it in the process.
    fn confirm(&self, status: &str) -> Result<()> {
        let pid = self.target.pid;
        if let Some(why) = status.strip_prefix("error ") {
            return Err(Error::TrampolineFailed {
                pid,
                why: why.trim().to_string(),
            });
        }
        if status.trim() == "ok" && self.trampoline_on()? {
            return Ok(());
        }
        Err(Error::TrampolineFailed {
            pid,
            why: format!(
                "its script reported {:?}, and eval_frame is not the trampoline",
                status.trim()
            ),
        })
    }
}

/// The interpreter with id 0. `interpreters.head` is the newest one, a subinterpreter while
/// any is alive, so the list is walked.
fn main_interpreter(target: &Target, runtime: u64, list: InterpreterList) -> Result<u64> {
    let mut interp = memory::read_u64(target, runtime + list.head, "interpreters.head")?;
    if interp == 0 {
        return Err(unavailable(
            target,
            "it has no interpreter (starting or exiting)",
        ));
    }
    for _ in 0..MAX_INTERPRETERS {
        if interp == 0 {
            break;
        }
        if memory::read_u64(target, interp + list.id, "interp->id")? == 0 {
            return Ok(interp);
        }
        interp = memory::read_u64(target, interp + list.next, "interp->next")?;
    }
    Err(unavailable(
        target,
        "its list of interpreters has no main interpreter (id 0)",
    ))
}

/// Whether a run-time address lies in the interpreter file's loaded segments.
fn in_interpreter_file(target: &Target, addr: u64) -> bool {
    target.elf.segments.iter().any(|s| {
        let start = target.runtime_addr(s.vaddr);
        addr >= start && addr - start < s.filesz
    })
}

/// Whether the trampoline was on earlier in this process: CPython creates `/tmp/perf-PID.map`
/// when it switches the trampoline on and never removes it, so a map no older than the process
/// tells. (The perf_jit backend writes no map; that case goes unseen.) Looked up inside the
/// target's root, a link in its place is not followed.
fn was_on_before(target: &Target) -> bool {
    let Some(map) = target
        .root
        .dir("/tmp")
        .ok()
        .and_then(|tmp| tmp.regular_file(&perf_map_name(target.pid)))
    else {
        return false;
    };
    let Ok(written) = map.modified() else {
        return false;
    };
    match started(target.pid) {
        // A map of an earlier process with this PID is older; a second of slack covers the
        // coarse clocks of both times.
        Some(start) => written + Duration::from_secs(1) >= start,
        None => true,
    }
}

/// The name of the perf map CPython's trampoline writes in the target's /tmp: by its PID in
/// its own PID namespace.
pub fn perf_map_name(pid: i32) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let own = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|ids| ids.split_whitespace().last())
        .and_then(|id| id.parse().ok())
        .unwrap_or(pid);
    format!("perf-{own}.map")
}

/// When the process started: its start time (field 22 of /proc/PID/stat, in clock ticks after
/// boot) against the time since boot.
fn started(pid: i32) -> Option<SystemTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, fields) = stat.rsplit_once(") ")?;
    let ticks: f64 = fields.split_whitespace().nth(19)?.parse().ok()?;
    let uptime = fs::read_to_string("/proc/uptime").ok()?;
    let uptime: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf reads a configuration value and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let age = Duration::try_from_secs_f64((uptime - ticks / hz as f64).max(0.0)).ok()?;
    SystemTime::now().checked_sub(age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_3_12s_interpreter_list_as_its_headers_do() {
        // 3.12 has no debug offsets: _PyRuntime.interpreters.head at 40, and each
        // PyInterpreterState's next at 0 and id at 8 (the 3.12.1 headers).
        let l = InterpreterLayout::of(PyVersion::new(3, 12), None).unwrap();
        assert_eq!(
            (l.interpreters_head, l.walk.interp_next, l.walk.interp_id),
            (40, 0, 8)
        );
    }

    #[test]
    fn decodes_the_eval_frame_accessor_of_each_build() {
        // Debian's 3.14 (CET): endbr64; mov 0x2148(%rdi),%rax; mov $0x598b80,%edx
        let sid = [
            0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x8b, 0x87, 0x48, 0x21, 0x00, 0x00, 0xba, 0x80,
        ];
        assert_eq!(eval_frame_offset(&sid), Some(0x2148));
        // pyenv's 3.12.1: mov 0x6d0(%rdi),%rax; test %rax,%rax
        let pyenv = [0x48, 0x8b, 0x87, 0xd0, 0x06, 0x00, 0x00, 0x48, 0x85, 0xc0];
        assert_eq!(eval_frame_offset(&pyenv), Some(0x6d0));
        // A small offset takes the short form: mov 0x70(%rdi),%rax
        assert_eq!(
            eval_frame_offset(&[0x48, 0x8b, 0x47, 0x70, 0xc3]),
            Some(0x70)
        );
    }

    #[test]
    fn refuses_other_code() {
        // mov 0x2148(%rsi),%rax: another register holds the interpreter.
        assert_eq!(
            eval_frame_offset(&[0x48, 0x8b, 0x86, 0x48, 0x21, 0, 0]),
            None
        );
        // A negative displacement is no field offset.
        assert_eq!(eval_frame_offset(&[0x48, 0x8b, 0x47, 0xf0]), None);
        assert_eq!(eval_frame_offset(&[0x48, 0x8b, 0x87, 0, 0, 0, 0x80]), None);
        // Cut short, empty, or an endbr64 alone.
        assert_eq!(eval_frame_offset(&[0x48, 0x8b, 0x87, 0x48, 0x21]), None);
        assert_eq!(eval_frame_offset(&[]), None);
        assert_eq!(eval_frame_offset(&ENDBR64), None);
    }
}
