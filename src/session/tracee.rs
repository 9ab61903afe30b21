//! The traced process's lifetime: attaching by PID, or spawning a command held at its exec until
//! the probes are live; watching for its exit; stopping a command pyprobe started.
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cpython::trampoline::perf_map_name;
use crate::error::{Error, Result};
use crate::session::run_as::RunAs;
use crate::signals;
use crate::source::TRAMPOLINE_ENV;
use crate::target::{Root, Target};

/// What is traced: a process found by PID, or a command pyprobe started.
pub enum Tracee {
    Attached {
        pid: i32,
        pidfd: Option<OwnedFd>,
    },
    Spawned {
        child: Child,
        held: bool,
        exited: bool,
        /// Whether the command ended by itself (not stopped by pyprobe at the session's end).
        ended_itself: bool,
        /// The perf map the trampoline pyprobe switched on writes (`/tmp/perf-PID.map` in the
        /// command's root, held open), removed once the command is gone.
        perf_map: Option<(Arc<Root>, String)>,
    },
}

impl Tracee {
    pub fn attach(pid: i32) -> Tracee {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let pidfd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) });
        Tracee::Attached { pid, pidfd }
    }

    /// Starts `argv` under ptrace and returns once it has exec'd a Python interpreter, still
    /// stopped, so that probes can be attached before its first bytecode. Execs of other
    /// programs on the way (`env python3`, a shell's `exec`) are followed.
    /// With `trampoline`, the command runs with CPython's perf trampoline on
    /// (`source::TRAMPOLINE_ENV`).
    /// With `user`, the command runs as that user (its groups, uid, HOME, USER, LOGNAME).
    pub fn spawn(
        argv: &[OsString],
        user: Option<&RunAs>,
        trampoline: bool,
    ) -> Result<(Tracee, Target)> {
        let command = argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let spawn_err = |why: String| Error::Spawn {
            command: command.clone(),
            why,
        };
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if trampoline {
            cmd.env(TRAMPOLINE_ENV.0, TRAMPOLINE_ENV.1);
        }
        let user = user.cloned();
        if let Some(u) = &user {
            cmd.env("HOME", &u.home)
                .env("USER", &u.name)
                .env("LOGNAME", &u.name);
        }
        // SAFETY: the closure makes only async-signal-safe calls (setgroups, setgid, setuid,
        // ptrace) on memory allocated before the fork, and touches no other Rust state.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(u) = &user {
                    u.become_user()?;
                }
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| spawn_err(e.to_string()))?;
        let pid = child.id() as i32;
        let mut tracee = Tracee::Spawned {
            child,
            held: true,
            exited: false,
            ended_itself: false,
            perf_map: None,
        };
        let mut first = true;
        // A libpython the loader has not mapped yet: step through syscalls until it is, so
        // that its load address (and with it _PyRuntime's) is known before attaching.
        let mut awaiting_library: Option<String> = None;
        loop {
            let status = match wait_for_stop(pid) {
                Ok(s) => s,
                Err(why) => return Err(spawn_err(why)),
            };
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                if let Tracee::Spawned { exited, held, .. } = &mut tracee {
                    *exited = true;
                    *held = false;
                }
                return Err(spawn_err(
                    "it exited before running a Python interpreter".into(),
                ));
            }
            if !libc::WIFSTOPPED(status) {
                continue;
            }
            let sig = libc::WSTOPSIG(status);
            let exec_stop =
                sig == libc::SIGTRAP && (first || (status >> 16) == libc::PTRACE_EVENT_EXEC);
            let syscall_stop = sig == libc::SIGTRAP | 0x80;
            if first {
                first = false;
                // SAFETY: options on our stopped tracee.
                unsafe {
                    libc::ptrace(
                        libc::PTRACE_SETOPTIONS,
                        pid,
                        0,
                        (libc::PTRACE_O_TRACEEXEC
                            | libc::PTRACE_O_EXITKILL
                            | libc::PTRACE_O_TRACESYSGOOD) as libc::c_long,
                    );
                }
            }
            if exec_stop {
                awaiting_library = None;
            }
            let library_mapped = awaiting_library.as_ref().is_some_and(|lib| {
                std::fs::read_to_string(format!("/proc/{pid}/maps"))
                    .is_ok_and(|m| m.contains(lib.as_str()))
            });
            if exec_stop || library_mapped {
                match Target::from_pid(pid) {
                    Ok(target) if target.bias == 0 && target.interpreter != target.exe => {
                        // By file name: the loader may reach it by another path than ours.
                        let name = target.interpreter.rsplit('/').next().unwrap_or_default();
                        awaiting_library = Some(format!("/{name}\n"));
                    }
                    Ok(mut target) => {
                        target.trampoline_requested = trampoline;
                        if let Tracee::Spawned { perf_map, .. } = &mut tracee
                            && trampoline
                        {
                            *perf_map = Some((target.root.clone(), perf_map_name(pid)));
                        }
                        return Ok((tracee, target));
                    }
                    Err(Error::NotPython { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let deliver = if exec_stop || syscall_stop { 0 } else { sig };
            let how = if awaiting_library.is_some() {
                libc::PTRACE_SYSCALL
            } else {
                libc::PTRACE_CONT
            };
            // SAFETY: resume our stopped tracee, passing on any signal that was not ours.
            unsafe { libc::ptrace(how, pid, 0, deliver as libc::c_long) };
        }
    }

    /// Lets a spawned command run (the probes are live by now).
    pub fn release(&mut self) {
        if let Tracee::Spawned { child, held, .. } = self
            && *held
        {
            // SAFETY: detaching our stopped tracee lets it continue.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, child.id() as i32, 0, 0) };
            *held = false;
        }
    }

    pub fn has_exited(&mut self) -> bool {
        match self {
            Tracee::Attached { pid, pidfd } => match pidfd {
                Some(fd) => {
                    let mut p = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: polling one valid fd without blocking.
                    unsafe { libc::poll(&mut p, 1, 0) > 0 }
                }
                None => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            },
            Tracee::Spawned {
                child,
                exited,
                ended_itself,
                ..
            } => {
                if !*exited && let Ok(Some(status)) = child.try_wait() {
                    *exited = true;
                    *ended_itself = true;
                    record_command_status(status);
                }
                *exited
            }
        }
    }

    /// Ends the session: a command pyprobe started is stopped with it, a PID is left alone.
    pub fn finish(&mut self) {
        let Tracee::Spawned {
            child,
            exited,
            perf_map,
            ..
        } = self
        else {
            return;
        };
        if !*exited {
            stop(child);
            *exited = true;
        }
        // Inside the command's root, whatever became of its /tmp: never a link's target.
        if let Some((root, name)) = perf_map.take()
            && let Ok(tmp) = root.dir("/tmp")
        {
            tmp.remove_regular(&name);
        }
    }
}

/// How the command pyprobe started ended by itself, as an exit code for pyprobe (128 + N for
/// signal N, as shells report it); none when pyprobe stopped it or traced a PID.
static COMMAND_STATUS: std::sync::OnceLock<u8> = std::sync::OnceLock::new();

fn record_command_status(status: std::process::ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    let _ = COMMAND_STATUS.set(code.clamp(0, 255) as u8);
}

/// The exit code pyprobe should end with for a command that ended by itself.
pub fn command_status() -> Option<u8> {
    COMMAND_STATUS.get().copied()
}

/// Stops a command pyprobe started: SIGTERM, then SIGKILL if it lingers.
fn stop(child: &mut Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Tracee {
    fn drop(&mut self) {
        self.release();
        self.finish();
    }
}

/// Waits for the held child to stop or exit, giving up (with the reason) on Ctrl-C or SIGTERM:
/// a command that never runs Python must not hold pyprobe.
fn wait_for_stop(pid: i32) -> std::result::Result<i32, String> {
    loop {
        let mut status = 0;
        // SAFETY: waiting on our own child, without blocking.
        match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
            -1 => return Err(std::io::Error::last_os_error().to_string()),
            0 => {}
            _ => return Ok(status),
        }
        if signals::stop_requested() {
            return Err("interrupted before it ran a Python interpreter".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
