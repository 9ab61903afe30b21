//! Shared test harness: real CPython workloads and the real pyprobe binary, cleaned up on drop.
#![allow(dead_code)]

pub mod agent;
pub mod flow_calls;
pub mod known_calls;
pub mod launch;
pub mod python;
pub mod readers;

#[allow(unused_imports)]
pub use launch::{Pyprobe, Ran, Traced, Tracing, Workload};
pub use python::Python;

/// One `#[test]` per entry, each calling the same check with its own arguments (most often the
/// interpreter it runs on): `tests_of!(check { name_a: (Python::debian()); name_b: (...); })`
/// makes `fn name_a() { check(Python::debian()) }`, and so on; doc lines before an entry stay
/// its doc.
#[macro_export]
macro_rules! tests_of {
    ($check:ident { $($(#[$doc:meta])* $name:ident: ($($arg:expr),* $(,)?);)+ }) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                $check($($arg),*);
            }
        )+
    };
}

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// Debian's interpreter, which has the USDT probes (the CI target).
pub const PYTHON: &str = "/usr/bin/python3.11";

/// A Debian chroot of scripts/testbeds, where it puts them: `$PYPROBE_TESTBEDS/<suite>`, by
/// default under /var/lib/pyprobe/testbeds: sid (3.13-3.15), bullseye (3.9), trixie (3.13),
/// each with USDT probes.
pub fn testbed(suite: &str) -> &'static str {
    let base =
        std::env::var("PYPROBE_TESTBEDS").unwrap_or_else(|_| "/var/lib/pyprobe/testbeds".into());
    // Leaked: a few bytes per call, and a Python keeps its root for the whole test.
    Box::leak(format!("{base}/{suite}").into_boxed_str())
}

pub fn pyprobe_bin() -> &'static str {
    env!("CARGO_BIN_EXE_pyprobe")
}

pub fn script(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(name);
    assert!(p.exists(), "missing workload {}", p.display());
    p.to_string_lossy().into_owned()
}

/// A child process that is killed (and reaped) when the guard goes out of scope.
pub struct Guard {
    child: Option<Child>,
}

impl Guard {
    pub fn spawn(cmd: &mut Command) -> Guard {
        Guard {
            child: Some(cmd.spawn().expect("spawn")),
        }
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until waited")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Writes `line` to its stdin. A child that closed it has most likely ended: the panic says
    /// how (an exit code, or the signal that ended it).
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.child().stdin.as_mut().expect("stdin is piped");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|_| stdin.flush()) {
            thread::sleep(Duration::from_millis(100));
            let pid = self.pid();
            let end = self.child().try_wait();
            panic!("write to child {pid}: {e}; its end: {end:?}");
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    /// Sends `line` (what a stdin-gated workload waits for), then waits for its end within
    /// `limit` (`wait_output`), which must be a success: its stderr if not.
    pub fn release(mut self, line: &str, limit: Duration) -> Output {
        self.send_line(line);
        let out = self.wait_output(limit);
        assert!(
            out.status.success(),
            "workload failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Waits for exit (killing the child if it overstays), draining its pipes meanwhile.
    pub fn wait_output(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        let drain = |r: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                break child.wait().expect("reap");
            }
            thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command to its end and returns what it wrote; its stderr if it failed.
pub fn output_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `python -c 'time.sleep(30)'` on this interpreter, given half a second to start.
pub fn sleeping(py: &Python) -> Guard {
    let g = Workload::code("import time; time.sleep(30)").on(py).raw();
    thread::sleep(Duration::from_millis(500));
    g
}

/// A command run as the user nobody, with no capabilities (setpriv).
pub fn as_nobody(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=-all",
        program,
    ]);
    cmd
}

/// The JSON document pyprobe printed last (a spawned workload shares its stdout).
pub fn last_json(stdout: &str) -> serde_json::Value {
    json_lines(stdout)
        .pop()
        .unwrap_or_else(|| panic!("no JSON in:\n{stdout}"))
}

/// Every JSON line of pyprobe's stdout. A command pyprobe starts shares that stdout, and its
/// own writes (a workload's "ready") may land just before one of pyprobe's lines: each line's
/// JSON starts at its first `{`.
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| l.find('{').map(|at| &l[at..]))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The PID pyprobe's banner names.
pub fn banner_pid(stderr: &str) -> i32 {
    let at = stderr
        .find(" in PID ")
        .unwrap_or_else(|| panic!("no banner: {stderr}"))
        + 8;
    stderr[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `v[key]`, a string.
pub fn str_at(v: &serde_json::Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
        .to_string()
}

/// `count` per function name from pycount's JSON, for functions in files ending with `file`.
pub fn counts_by_name(report: &serde_json::Value, file: &str) -> Vec<(String, u32, u64)> {
    let mut out: Vec<(String, u32, u64)> = report["functions"]
        .as_array()
        .expect("functions array")
        .iter()
        .filter(|f| f["file"].as_str().unwrap().ends_with(file))
        .map(|f| {
            let line = f["line"].as_i64().unwrap() as u32;
            (str_at(f, "name"), line, f["count"].as_u64().unwrap())
        })
        .collect();
    out.sort();
    out
}

/// A bad input: non-zero exit, one line on stderr, no panic or backtrace.
pub fn assert_clean_failure(args: &[&str], expect: &str) {
    let out = Pyprobe::new(args).run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "{args:?}: one line expected:\n{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{args:?}: {err}"
    );
    assert!(err.contains(expect), "{args:?}: {err:?} lacks {expect:?}");
}

/// `assert_clean_failure` on each (args, expected) of a table; a failure names its args.
pub fn assert_clean_failures(cases: &[(&[&str], &str)]) {
    for (args, expect) in cases {
        assert_clean_failure(args, expect);
    }
}

/// `pyprobe COMMAND --pid P` on `sleep`, a process that is no Python at all, is refused so.
pub fn assert_refuses_a_process_that_is_not_python(command: &str) {
    let g = Workload::command(Command::new("sleep")).args(&["30"]).raw();
    let pid = g.pid().to_string();
    assert_clean_failure(&[command, "--pid", &pid], "is not a Python process");
}

/// `pyprobe COMMAND --pid P` on an idle CPython built without USDT probes (a command that needs
/// them) is refused with that reason.
pub fn assert_refuses_a_python_without_probes(command: &str) {
    let g = python_without_probes();
    let pid = g.pid().to_string();
    assert_clean_failure(&[command, "--pid", &pid], "built without USDT probes");
}

/// `pyprobe count --pid P` on known_calls.py running on `py` is refused, saying `expect`.
pub fn assert_count_refuses_known_calls_on(py: &Python, expect: &str) {
    let g = Workload::script("known_calls.py").on(py).ready();
    assert_clean_failure(&["count", "--pid", &g.pid().to_string()], expect);
}

/// The 1-based number of the line of a workload (tests/scripts) that ends with `marker` (such
/// as `# line:TAG`), so that expectations follow the script when it changes.
pub fn marked_line(script_name: &str, marker: &str) -> usize {
    let text = std::fs::read_to_string(script(script_name)).unwrap();
    text.lines()
        .position(|l| l.trim_end().ends_with(marker))
        .unwrap_or_else(|| panic!("no {marker} in {script_name}"))
        + 1
}

/// The first element of a JSON array whose `key` is `value`.
pub fn element_where<'a>(
    array: &'a serde_json::Value,
    key: &str,
    value: &str,
) -> Option<&'a serde_json::Value> {
    array.as_array().unwrap().iter().find(|e| e[key] == value)
}

/// The JSON that follows `prefix` on the first line of `text` that starts with it (a
/// workload's own report beside pyprobe's output).
pub fn json_after(text: &str, prefix: &str) -> serde_json::Value {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"));
    serde_json::from_str(line).unwrap()
}

/// The row of `pyprobe probes`' table that starts with `row`, and its two columns after it:
/// whether it works here, and how (the text after that word).
pub fn probes_row<'a>(text: &'a str, row: &str) -> (&'a str, &'a str, &'a str) {
    let line = text
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no row {row:?}:\n{text}"));
    let (works, how) = line[row.len()..].trim_start().split_once(' ').unwrap();
    (line, works, how)
}

/// A CPython built without USDT probes: the pyenv builds on these machines are built without
/// --with-dtrace.
pub fn pyenv_python() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    std::fs::read_dir(std::path::Path::new(&home).join(".pyenv/versions"))
        .expect("pyenv builds (no probes) are part of this machine image")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/python3"))
        .find(|p| p.exists())
        .expect("a pyenv python3")
}

/// An idle CPython without probes, already past its start-up.
pub fn python_without_probes() -> Guard {
    let g = Workload::code("import time; time.sleep(30)")
        .on(&Python::at(pyenv_python()))
        .raw();
    thread::sleep(Duration::from_millis(300));
    g
}

/// `pyprobe COMMAND --pid P` on an idle `py` is refused, saying `expect`; the idle process
/// stays, for more.
pub fn assert_refused_on_idle(py: &Python, command: &str, expect: &str) -> Guard {
    let g = sleeping(py);
    assert_clean_failure(&[command, "--pid", &g.pid().to_string()], expect);
    g
}

/// sleepers.py's calls timed by pyprobe between the workload's own timings of each call: from
/// inside the function (a lower bound) and around the call (an upper bound), whatever else the
/// machine is doing. `own` holds the workload's JSON line.
pub fn assert_sleepers_latency(report: &serde_json::Value, own: &str) {
    let own: serde_json::Value = serde_json::from_str(
        own.lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no workload timings in {own}")),
    )
    .expect("workload timings");
    // Percentiles are reported at their bucket's midpoint: within 1/32 of the value, and the
    // bucket itself is up to 1/16 wide.
    const SLACK: f64 = 0.0625;
    for (name, calls) in [("sleep_10ms", 40u64), ("sleep_30ms", 20)] {
        let f = report["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {report}"));
        assert_eq!(f["count"], calls, "{f}");
        assert_eq!(f["timed"], calls, "{f}");
        let sorted = |which: &str| {
            let mut v: Vec<u64> = own[which][name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            v.sort();
            v
        };
        let (lo, hi) = (sorted("inside"), sorted("around"));
        let pick =
            |v: &[u64], q: f64| v[((q / 100.0) * (v.len() - 1) as f64).round() as usize] as f64;
        for (field, q) in [("p50_ns", 50.0), ("p90_ns", 90.0), ("max_ns", 100.0)] {
            let got = f[field].as_u64().unwrap() as f64;
            let (low, high) = (pick(&lo, q), pick(&hi, q));
            assert!(
                got >= low * (1.0 - SLACK) && got <= high * (1.0 + SLACK),
                "{name} {field}: {got} not within the workload's own {low}..{high}"
            );
        }
    }
}

/// Semaphores of every function-related probe, read from the target's memory.
pub fn semaphores(pid: i32) -> Vec<(String, u16)> {
    let t = pyprobe::target::Target::from_pid(pid).expect("target");
    ["function__entry", "function__return", "line"]
        .iter()
        .map(|p| {
            (
                p.to_string(),
                t.semaphore_value(p).expect("semaphore readable"),
            )
        })
        .collect()
}

/// The function-related probes whose sites hold a uprobe's breakpoint now: the byte at the
/// site in the target's memory (where the kernel writes its int3) differs from the file's.
pub fn uprobes_in(pid: i32) -> Vec<String> {
    let t = pyprobe::target::Target::from_pid(pid).expect("target");
    ["function__entry", "function__return", "line"]
        .iter()
        .filter(|p| {
            let site = t.elf.probe(p).expect("probe site");
            let live = t
                .read_memory(t.runtime_addr(site.pc), 1)
                .expect("target memory");
            live != t.file_bytes(site.pc, 1).expect("interpreter file")
        })
        .map(|p| p.to_string())
        .collect()
}

/// A directory of its own under /tmp (tempfile's), readable by every user (a test may run a
/// command as nobody), removed with everything in it on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), name)
    }

    /// One under `parent` (a chroot's /tmp).
    pub fn new_in(parent: &std::path::Path, name: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(&format!("pyprobe-{name}-"))
            .tempdir_in(parent)
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }

    /// A path in it, as a string.
    pub fn file(&self, rel: &str) -> String {
        self.path().join(rel).to_string_lossy().into_owned()
    }

    /// Writes `text` to `rel` (its directories made first) and returns its full path.
    pub fn write(&self, rel: &str, text: &str) -> String {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

/// The `--help` of pyprobe run under another name (pycount, pyflow, pygc: argv[0] picks the
/// command) shows each of `words`: that command's help.
pub fn assert_help_under_name(name: &str, words: &[&str]) {
    let dir = TempDir::new("argv0");
    let link = dir.path().join(name);
    std::os::unix::fs::symlink(pyprobe_bin(), &link).unwrap();
    let out = Command::new(&link).arg("--help").output().unwrap();
    assert!(out.status.success(), "{name} --help: {out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for w in words {
        assert!(help.contains(w), "{name} --help lacks {w}:\n{help}");
    }
}

/// A path of more than `bytes` bytes under `dir` that ends in `/name`: directories of 50 bytes
/// each, so that only a path's end can tell where it is.
pub fn long_path(dir: &TempDir, bytes: usize, name: &str) -> String {
    let mut rel = String::new();
    let mut i = 0;
    while dir.path().to_string_lossy().len() + rel.len() + name.len() < bytes {
        rel.push_str(&format!("{i:0>49}/"));
        i += 1;
    }
    rel + name
}
