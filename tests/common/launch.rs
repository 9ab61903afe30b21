//! The one way tests start processes: a `Workload` (a CPython program, on any `Python`) and a
//! `Pyprobe` session (by `--pid`, or running the workload as `-- COMMAND`), each a builder that
//! ends in how the test waits for it; `Guard` owns every child either starts.
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::process::{ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Guard, Python, pyprobe_bin};

/// What a workload runs.
#[derive(Debug)]
enum Program {
    /// A file of tests/scripts, copied where the interpreter sees it when started.
    Script(String),
    /// A file already where the interpreter sees it.
    Path(String),
    /// Source for `-c`.
    Code(String),
    /// A command made by the caller (another user, interpreter flags): started as it is.
    Command(Command),
}

/// A CPython workload, by default a script of tests/scripts on Debian's 3.11. Most print "ready"
/// once their imports are done and then wait for a line ("go") on stdin before their measured
/// work.
#[derive(Debug)]
pub struct Workload {
    program: Program,
    py: Python,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    /// Its stderr goes nowhere (a workload that runs long and is never asked what it said).
    quiet: bool,
}

impl Workload {
    fn of(program: Program) -> Workload {
        Workload {
            program,
            py: Python::debian(),
            args: Vec::new(),
            env: Vec::new(),
            quiet: false,
        }
    }

    /// tests/scripts/NAME.
    pub fn script(name: &str) -> Workload {
        Workload::of(Program::Script(name.into()))
    }

    /// A program at `path` as the interpreter sees it (from `Python::script` or `Python::file`).
    pub fn path(path: &str) -> Workload {
        Workload::of(Program::Path(path.into()))
    }

    /// `python -c SOURCE`.
    pub fn code(source: &str) -> Workload {
        Workload::of(Program::Code(source.into()))
    }

    /// A command made by the caller (another user, interpreter flags), started as it is: `args`
    /// and `env` add to it, `on` does not change it.
    pub fn command(cmd: Command) -> Workload {
        Workload::of(Program::Command(cmd))
    }

    /// On this interpreter (in its chroot, its trampoline on if it has it).
    pub fn on(mut self, py: &Python) -> Workload {
        self.py = py.clone();
        self
    }

    /// Arguments after the program.
    pub fn args(mut self, args: &[&str]) -> Workload {
        self.args.extend(args.iter().map(OsString::from));
        self
    }

    /// A variable of its environment (started by `ready` or `raw`; not with `Pyprobe::spawn`).
    pub fn env(mut self, key: &str, value: &str) -> Workload {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Its stderr to /dev/null rather than a pipe nobody reads.
    pub fn quiet(mut self) -> Workload {
        self.quiet = true;
        self
    }

    /// The interpreter it runs on.
    pub fn python(&self) -> &Python {
        &self.py
    }

    /// The command that starts it.
    fn build(self) -> Command {
        let mut cmd = match self.program {
            Program::Script(name) => self.py.command(&self.py.script(&name)),
            Program::Path(path) => self.py.command(&path),
            Program::Code(source) => {
                let mut c = self.py.interpreter();
                c.args(["-c", &source]);
                c
            }
            Program::Command(c) => c,
        };
        cmd.args(self.args);
        cmd.envs(self.env);
        cmd
    }

    /// The same as an argument list, for `pyprobe ... -- COMMAND` (a spawned command inherits
    /// pyprobe's environment: none of its own).
    fn argv(self) -> Vec<OsString> {
        assert!(
            self.env.is_empty(),
            "a spawned workload has no environment of its own"
        );
        let strings = |v: Vec<String>| v.into_iter().map(OsString::from).collect::<Vec<_>>();
        let mut v = match self.program {
            Program::Script(name) => strings(self.py.argv(&self.py.script(&name))),
            Program::Path(path) => strings(self.py.argv(&path)),
            Program::Code(source) => strings(self.py.argv("-c"))
                .into_iter()
                .chain([source.into()])
                .collect(),
            Program::Command(c) => std::iter::once(c.get_program().to_owned())
                .chain(c.get_args().map(ToOwned::to_owned))
                .collect(),
        };
        v.extend(self.args);
        v
    }

    /// Started with piped stdio; returns once it printed "ready" (the rest of its stdout is
    /// read and dropped).
    pub fn ready(self) -> Guard {
        self.ready_lines().0
    }

    /// Started with piped stdio; returns once it printed "ready", the lines after it coming on
    /// the channel (a workload that reports what it did).
    pub fn ready_lines(self) -> (Guard, mpsc::Receiver<String>) {
        let what = format!("{:?}", self.program);
        let (g, lines) = self.lines();
        let first = lines.recv_timeout(Duration::from_secs(60)).ok();
        assert_eq!(first.as_deref(), Some("ready"), "{what} did not get ready");
        (g, lines)
    }

    /// Started with piped stdio, each line of its stdout on the channel as it comes. Its stdout
    /// is read to the end even once the receiver is dropped, so that it never blocks on a full
    /// pipe.
    pub fn lines(self) -> (Guard, mpsc::Receiver<String>) {
        let mut g = self.raw();
        let stdout = g.child().stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        (g, rx)
    }

    /// Started as it is with piped stdio, its stdout left to the caller.
    pub fn raw(self) -> Guard {
        let quiet = self.quiet;
        let mut cmd = self.build();
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        cmd.stderr(if quiet { Stdio::null() } else { Stdio::piped() });
        Guard::spawn(&mut cmd)
    }
}

/// What a process wrote by its end, and whether it ended well.
#[derive(Debug)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
}

impl From<Output> for Ran {
    fn from(out: Output) -> Ran {
        Ran {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            ok: out.status.success(),
        }
    }
}

/// A pyprobe session to start: `Pyprobe::new(&["count", "--json"])`, then its target
/// (`pid`, `spawn`, or in the arguments), then how to wait for it.
#[derive(Debug)]
pub struct Pyprobe {
    cmd: Command,
}

impl Pyprobe {
    /// This build's pyprobe with these arguments.
    pub fn new(args: &[&str]) -> Pyprobe {
        let mut cmd = Command::new(pyprobe_bin());
        cmd.args(args);
        Pyprobe { cmd }
    }

    /// A pyprobe command made by the caller (another binary, name or environment).
    pub fn command(cmd: Command) -> Pyprobe {
        Pyprobe { cmd }
    }

    /// One more argument, any bytes (a path that is not UTF-8).
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Pyprobe {
        self.cmd.arg(arg);
        self
    }

    /// `--pid` of this process.
    pub fn pid(mut self, target: &Guard) -> Pyprobe {
        self.cmd.args(["--pid", &target.pid().to_string()]);
        self
    }

    /// `-- COMMAND`: pyprobe starts the workload itself.
    pub fn spawn(mut self, workload: Workload) -> Pyprobe {
        self.cmd.arg("--").args(workload.argv());
        self
    }

    /// Starts it and returns once its banner says the probes are live.
    pub fn start(mut self) -> Tracing {
        let mut guard = piped(&mut self.cmd);
        let stderr = guard.child().stderr.take().unwrap();
        let stderr = wait_for_banner(stderr, &mut guard);
        Tracing { guard, stderr }
    }

    /// Starts it with piped stdio and returns at once (a test that signals it, or holds its
    /// pipes, from its first moment).
    pub fn launch(mut self) -> Guard {
        piped(&mut self.cmd)
    }

    /// Runs it to its end with no target interaction (bad-input tests), stdin null.
    pub fn run(self) -> Output {
        self.within(Duration::from_secs(30))
    }

    /// `run` for a session that runs a command of its own: killed if it overstays `limit`.
    pub fn within(mut self, limit: Duration) -> Output {
        Guard::spawn(
            self.cmd
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .wait_output(limit)
    }

    /// Runs it to its end (`run`), which must be a success (its stderr if not): its stdout.
    pub fn text(self) -> String {
        let out = self.run();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `text` as the one JSON document it is (`--json`, `--format json`).
    pub fn json(self) -> serde_json::Value {
        let text = self.text();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Runs it to its end, feeding "go" on stdin (a spawned stdin-gated workload reads it).
    pub fn run_with_go(mut self) -> Ran {
        let mut g = piped(&mut self.cmd);
        g.send_line("go");
        g.wait_output(Duration::from_secs(120)).into()
    }

    /// `run_with_go`, which must be a success (what it wrote if not): (stdout, stderr).
    pub fn run_with_go_ok(self) -> (String, String) {
        let Ran { stdout, stderr, ok } = self.run_with_go();
        assert!(ok, "{stdout}{stderr}");
        (stdout, stderr)
    }

    /// Traces a stdin-gated workload by PID: starts it (until "ready"), then pyprobe on it
    /// (`--pid` last), releases it with "go", waits for its end (which must be a success) and
    /// then for pyprobe's report.
    pub fn trace(self, workload: Workload) -> Traced {
        let py = workload.python().clone();
        let w = workload.ready();
        let pid = w.pid();
        let p = self.pid(&w).start();
        let wout = w.release("go", Duration::from_secs(60));
        let (stdout, stderr) = p.finish();
        py.remove_perf_map(pid);
        Traced {
            stdout,
            stderr,
            workload: wout.into(),
        }
    }
}

/// A pyprobe that is tracing: its guard, and its stderr lines from the start on.
pub struct Tracing {
    pub guard: Guard,
    pub stderr: mpsc::Receiver<String>,
}

impl Deref for Tracing {
    type Target = Guard;
    fn deref(&self) -> &Guard {
        &self.guard
    }
}

impl DerefMut for Tracing {
    fn deref_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }
}

impl Tracing {
    /// Collects pyprobe's stdout and stderr after it exits on its own (target exit or
    /// --duration).
    pub fn finish(self) -> (String, String) {
        let out = self.guard.wait_output(Duration::from_secs(60));
        // Its last lines may still be on their way from the reader thread: wait for the pipe's
        // end (a command it started may hold the pipe a little longer; not past a few seconds).
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut err = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => err.push(line),
                Err(_) => break,
            }
        }
        err.push(String::from_utf8_lossy(&out.stderr).into_owned());
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            err.join("\n"),
        )
    }
}

/// A workload traced by PID to its end: pyprobe's stdout and stderr, and the workload's own.
#[derive(Debug)]
pub struct Traced {
    pub stdout: String,
    pub stderr: String,
    pub workload: Ran,
}

impl Traced {
    /// The JSON report pyprobe printed (with `--json`).
    pub fn report(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "pyprobe printed no JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Started with stdin, stdout and stderr piped to this test.
fn piped(cmd: &mut Command) -> Guard {
    Guard::spawn(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

/// Forwards stderr lines through a channel after the banner appeared; panics with stderr if
/// pyprobe exits first or never says it is tracing.
fn wait_for_banner(stderr: ChildStderr, g: &mut Guard) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let done = line.starts_with("Tracing");
                seen.push(line);
                if done {
                    // What came before the banner stays part of what pyprobe said.
                    let (tx2, rx2) = mpsc::channel();
                    for l in seen {
                        let _ = tx2.send(l);
                    }
                    thread::spawn(move || rx.iter().try_for_each(|l| tx2.send(l)));
                    return rx2;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !g.alive() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    panic!(
        "pyprobe did not start tracing; stderr:\n{}",
        seen.join("\n")
    );
}
