//! The perf trampoline of real CPython processes, seen and switched on through the library
//! (not the binary): each target also says for itself whether it sees the trampoline on.
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::{Guard, Workload};
use pyprobe::cpython::trampoline::{self, TrampolineState};
use pyprobe::error::Error;
use pyprobe::target::Target;

/// Calls a function in a loop on its main thread; a line on stdin makes another thread print
/// whether the process sees the trampoline on, and exit.
const BUSY: &str = r#"
import os, sys, threading
def answer():
    sys.stdin.readline()
    print(sys.is_stack_trampoline_active(), flush=True)
    os._exit(0)
threading.Thread(target=answer, daemon=True).start()
def work(n):
    return sum(range(n))
print("ready", flush=True)
while True:
    work(100)
"#;

/// BUSY after two seconds in `time.sleep`, where no request can be taken.
fn sleepy() -> String {
    BUSY.replace(
        "print(\"ready\", flush=True)\n",
        "print(\"ready\", flush=True)\nimport time; time.sleep(2)\n",
    )
}

/// BUSY in a process that had the trampoline on and switched it off before it got ready.
fn toggled() -> String {
    format!(
        "import sys\nsys.activate_stack_trampoline('perf')\nsys.deactivate_stack_trampoline()\n{BUSY}"
    )
}

/// A Python of the sid chroot (3.13-3.15, built by scripts/test), with its flags and code.
fn sid(version: &str, flags: &[&str], code: &str) -> Command {
    let mut cmd = common::Python::sid(version).interpreter();
    cmd.args(flags).args(["-c", code]);
    cmd
}

/// A pyenv build of this machine image (shared libpython, no probes).
fn pyenv(version: &str, code: &str) -> Command {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let python = PathBuf::from(format!("{home}/.pyenv/versions/{version}/bin/python3"));
    assert!(python.exists(), "{} missing", python.display());
    let mut cmd = Command::new(python);
    cmd.args(["-c", code]);
    cmd
}

/// A running target, killed on drop, its perf map (which CPython never removes) removed.
struct Python {
    /// Taken when the target is asked its view, after which it exits.
    guard: Option<Guard>,
    lines: mpsc::Receiver<String>,
    /// Where its perf map would be, from here.
    perf_map: PathBuf,
}

impl Python {
    /// Starts `cmd` and returns once it printed "ready".
    fn start(mut cmd: Command) -> Python {
        for var in [
            "PYTHONPERFSUPPORT",
            "PYTHON_JIT",
            "PYTHON_DISABLE_REMOTE_DEBUG",
        ] {
            if !cmd.get_envs().any(|(k, _)| k == var) {
                cmd.env_remove(var);
            }
        }
        let (guard, lines) = Workload::command(cmd).ready_lines();
        let pid = guard.pid();
        let root = std::fs::read_link(format!("/proc/{pid}/root")).expect("its root");
        Python {
            perf_map: root.join(format!("tmp/perf-{pid}.map")),
            guard: Some(guard),
            lines,
        }
    }

    fn pid(&self) -> i32 {
        self.guard.as_ref().expect("running").pid()
    }

    fn target(&self) -> Target {
        Target::from_pid(self.pid()).expect("a Python target")
    }

    fn state(&self) -> TrampolineState {
        trampoline::state(&self.target()).expect("a state")
    }

    /// Files of pyprobe's left in the target's /tmp.
    fn leftovers(&self) -> Vec<String> {
        let prefix = format!(".pyprobe-trampoline-{}-", self.pid());
        let tmp = format!("/proc/{}/root/tmp", self.pid());
        std::fs::read_dir(tmp)
            .expect("its /tmp")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// Checks the trampoline is left in `state`, with no file of ours in the target's /tmp, and
    /// that the target sees it on exactly when it is active (which ends the target).
    fn assert_left(self, state: TrampolineState) {
        assert_eq!(self.state(), state);
        assert_eq!(self.leftovers(), Vec::<String>::new());
        let on = state == TrampolineState::Active;
        assert_eq!(self.sees_trampoline(), on);
    }

    /// Switches the trampoline on (or finds it on), leaving nothing of ours behind; the target
    /// sees it on (which ends the target).
    fn activated(self) {
        trampoline::activate(&self.target(), || {}).expect("activation");
        self.assert_left(TrampolineState::Active);
    }

    /// `activate`'s refusal, in one line, with the trampoline left off and nothing of ours in
    /// the target's /tmp (which ends the target).
    fn refusal(self) -> Error {
        let e = trampoline::activate(&self.target(), || {}).unwrap_err();
        assert_one_line(&e);
        self.assert_left(TrampolineState::Inactive);
        e
    }

    /// Asks the target whether it sees the trampoline on; it exits after answering, and must
    /// have printed nothing on stderr.
    fn sees_trampoline(mut self) -> bool {
        let mut guard = self.guard.take().expect("running");
        assert!(guard.alive(), "PID {} died", guard.pid());
        guard.send_line("?");
        let answer = self
            .lines
            .recv_timeout(Duration::from_secs(5))
            .expect("an answer");
        let out = guard.wait_output(Duration::from_secs(5));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.is_empty(), "the target complained: {stderr}");
        match answer.as_str() {
            "True" => true,
            "False" => false,
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.perf_map);
    }
}

/// A refusal is a one-line message with no trace of a panic.
fn assert_one_line(e: &Error) {
    let text = e.one_line();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn state_follows_x_perf_and_pythonperfsupport() {
    let mut on = vec![
        Python::start(sid("3.13", &["-X", "perf"], BUSY)),
        Python::start(sid("3.14", &["-X", "perf"], BUSY)),
        Python::start(sid("3.15", &["-X", "perf"], BUSY)),
    ];
    for version in ["3.12.1", "3.13.0"] {
        let mut cmd = pyenv(version, BUSY);
        cmd.env("PYTHONPERFSUPPORT", "1");
        on.push(Python::start(cmd));
    }
    let off = [
        Python::start(sid("3.13", &[], BUSY)),
        Python::start(sid("3.14", &[], BUSY)),
        Python::start(sid("3.15", &[], BUSY)),
        Python::start(pyenv("3.12.1", BUSY)),
        Python::start(pyenv("3.13.0", BUSY)),
    ];
    for p in on {
        let version = p.target().version_text();
        assert_eq!(p.state(), TrampolineState::Active, "{version}");
        assert!(p.sees_trampoline(), "{version}");
    }
    for p in off {
        let version = p.target().version_text();
        assert_eq!(p.state(), TrampolineState::Inactive, "{version}");
        assert!(!p.sees_trampoline(), "{version}");
    }
}

#[test]
fn before_3_12_there_is_no_trampoline() {
    let p = Python::start(pyenv(
        "3.11.7",
        "import time; print('ready', flush=True); time.sleep(30)",
    ));
    let target = p.target();
    assert_eq!(
        trampoline::state(&target).unwrap(),
        TrampolineState::Unknown("CPython 3.11.7 has no perf trampoline (it came in 3.12)".into())
    );
    let e = trampoline::activate(&target, || {}).unwrap_err();
    assert!(matches!(e, Error::TrampolineUnavailable { .. }), "{e:?}");
    assert_one_line(&e);
}

/// Switches the trampoline on in a busy process of the sid chroot and checks it from both sides.
fn activates_in_a_busy(version: &str) {
    let p = Python::start(sid(version, &[], BUSY));
    assert_eq!(p.state(), TrampolineState::Inactive);
    let before = SystemTime::now();
    let started = Instant::now();
    trampoline::activate(&p.target(), || {}).expect("activation");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(p.state(), TrampolineState::Active);
    // Created by the activation (file times come from a coarse clock, hence the slack).
    let written = std::fs::metadata(&p.perf_map)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("no perf map {}: {e}", p.perf_map.display()));
    assert!(written + Duration::from_millis(50) >= before);
    assert_eq!(p.leftovers(), Vec::<String>::new());
    // Already on: nothing to do.
    trampoline::activate(&p.target(), || {}).expect("a second call");
    assert!(p.sees_trampoline());
}

tests_of!(activates_in_a_busy {
    activate_switches_it_on_in_a_busy_3_14: ("3.14");
    activate_switches_it_on_in_a_busy_3_15: ("3.15");
});

#[test]
fn activate_leaves_an_active_trampoline_alone() {
    Python::start(sid("3.14", &["-X", "perf"], BUSY)).activated();
}

#[test]
fn activate_respects_a_process_that_disabled_remote_debugging() {
    let by_flag = Python::start(sid("3.14", &["-X", "disable-remote-debug"], BUSY));
    let mut cmd = sid("3.15", &[], BUSY);
    cmd.env("PYTHON_DISABLE_REMOTE_DEBUG", "1");
    let by_env = Python::start(cmd);
    for p in [by_flag, by_env] {
        let e = trampoline::activate(&p.target(), || {}).unwrap_err();
        assert!(
            matches!(e, Error::RemoteDebugDisabled { pid } if pid == p.pid()),
            "{e:?}"
        );
        assert_one_line(&e);
        assert!(e.to_string().contains("PYTHONPERFSUPPORT=1"), "{e}");
        assert!(!p.perf_map.exists());
        p.assert_left(TrampolineState::Inactive);
    }
}

#[test]
fn activate_needs_3_14() {
    for p in [
        Python::start(sid("3.13", &[], BUSY)),
        Python::start(pyenv("3.12.1", BUSY)),
    ] {
        let e = p.refusal();
        assert!(matches!(e, Error::RemoteExecUnsupported { .. }), "{e:?}");
    }
}

#[test]
fn a_sleeping_main_thread_gets_its_request_withdrawn() {
    let p = Python::start(sid("3.14", &[], &sleepy()));
    let started = Instant::now();
    let e = trampoline::activate_within(&p.target(), Duration::from_secs(1), || {}).unwrap_err();
    assert!(
        matches!(e, Error::MainThreadBlocked { pid, .. } if pid == p.pid()),
        "{e:?}"
    );
    assert_one_line(&e);
    assert_eq!(p.leftovers(), Vec::<String>::new());
    // Once awake and busy, it finds no request: a pending one would now fail to open the
    // removed script, on its stderr, which `sees_trampoline` requires empty.
    thread::sleep(Duration::from_millis(2600).saturating_sub(started.elapsed()));
    assert_eq!(p.state(), TrampolineState::Inactive);
    assert!(!p.sees_trampoline());
}

#[test]
fn activate_refuses_a_process_that_switched_it_off_before() {
    let p = Python::start(sid("3.14", &[], &toggled()));
    assert_eq!(p.state(), TrampolineState::Inactive);
    let e = p.refusal();
    assert!(
        matches!(&e, Error::TrampolineUnavailable { why, .. } if why.contains("switched it off")),
        "{e:?}"
    );
}

#[test]
fn activate_reports_what_the_target_refused() {
    let mut cmd = sid("3.14", &[], BUSY);
    cmd.env("PYTHON_JIT", "1");
    let e = Python::start(cmd).refusal();
    assert!(
        matches!(&e, Error::TrampolineFailed { why, .. } if why.contains("JIT")),
        "{e:?}"
    );
}

#[test]
fn activate_reaches_the_main_interpreter_behind_a_subinterpreter() {
    // The newest interpreter heads the list; the main one (id 0) is behind it.
    let code =
        format!("import concurrent.interpreters\nsub = concurrent.interpreters.create()\n{BUSY}");
    let p = Python::start(sid("3.14", &[], &code));
    assert_eq!(p.state(), TrampolineState::Inactive);
    p.activated();
}

#[test]
fn activate_works_for_a_target_of_another_user() {
    // The script must be readable by the target whatever our umask; its status file is the
    // target's, in a sticky /tmp.
    let mut cmd = Command::new("chroot");
    cmd.args([
        "--userspec=65534:65534",
        common::testbed("sid"),
        "/usr/bin/python3.15",
        "-c",
        BUSY,
    ]);
    Python::start(cmd).activated();
}

#[test]
fn activate_succeeds_where_the_script_cannot_write_its_status() {
    // The target's /tmp has inodes for the script and the perf map, none for the status file:
    // the trampoline goes on and only the report is lost, so the process is asked.
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        &format!(
            "mount -t tmpfs -o nr_inodes=3 none {}/tmp && exec chroot {} /usr/bin/python3.14 -c \"$0\"",
            common::testbed("sid"),
            common::testbed("sid")
        ),
        BUSY,
    ]);
    let p = Python::start(cmd);
    trampoline::activate(&p.target(), || {}).expect("activation without a status file");
    assert_eq!(p.state(), TrampolineState::Active);
}
