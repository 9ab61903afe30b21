//! pyprobe never waits on the kernel at its end: a service whose workers park forever inside
//! Python calls made while it was traced (a queue get, an accept, a sleep, a lock) under every
//! command that times returns, on every kind of source (eval-frame uprobes on 3.10, 3.12 and
//! 3.14 with the trampoline; USDT on Debian's 3.11). Before, a uretprobe's pending return held
//! the detach (and every other uprobe user on the host) for as long as the worker stayed parked.
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::agent::Agent;
use common::*;

/// A parked service: started, then (once a tracer is attached) told to park its workers.
struct Service {
    guard: Guard,
    lines: mpsc::Receiver<String>,
}

impl Service {
    fn start(py: &Python) -> Service {
        Service::start_as(py, None)
    }

    /// Started as `comm` (through a link of that name to the interpreter), for the agent.
    fn start_as(py: &Python, comm: Option<&str>) -> Service {
        let py = match comm {
            Some(comm) => {
                let inside = format!("/tmp/pyprobe-detach-{}/{comm}", std::process::id());
                let link = PathBuf::from(format!("{}{inside}", py.root.unwrap_or("")));
                std::fs::create_dir_all(link.parent().unwrap()).unwrap();
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&py.exe, &link).unwrap();
                Python {
                    exe: inside,
                    ..py.clone()
                }
            }
            None => py.clone(),
        };
        let path = py.script("parked_forever.py");
        let (guard, lines) = Workload::path(&path).on(&py).quiet().lines();
        let mut s = Service { guard, lines };
        s.expect("ready");
        s
    }

    fn expect(&mut self, what: &str) {
        let line = self.lines.recv_timeout(Duration::from_secs(20)).ok();
        assert_eq!(line.as_deref(), Some(what), "parked_forever.py");
    }

    /// Parks the workers inside calls that begin now, under whatever is attached.
    fn park(&mut self) {
        self.guard.send_line("park");
        self.expect("parked");
    }

    fn pid(&self) -> i32 {
        self.guard.pid()
    }
}

fn pythons() -> Vec<(&'static str, Python)> {
    vec![
        ("3.10 eval-frame", Python::pyenv("3.10")),
        ("3.12 trampoline", Python::pyenv("3.12").with_trampoline()),
        ("3.14 trampoline", Python::sid("3.14").with_trampoline()),
        ("3.11 USDT", Python::debian()),
    ]
}

/// `pyprobe ARGS --pid P -d 2` on a service parked after the banner: ends within 3 s of it.
fn ends_after_duration(py: &Python, args: &[&str]) {
    let mut svc = Service::start(py);
    let pid = svc.pid().to_string();
    let mut all = args.to_vec();
    all.extend(["--pid", &pid, "-d", "2"]);
    let p = Pyprobe::new(&all).start();
    let armed = Instant::now();
    svc.park();
    let (_, err) = p.finish();
    let took = armed.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "{args:?} -d 2 ended {took:?} after its banner\n{err}"
    );
    assert!(svc.guard.alive(), "{args:?}: the service died\n{err}");
    assert_no_breakpoint_left(svc.pid());
}

/// `pyprobe ARGS -d 2 -- PY parked_forever.py --now` (the workers park from the start, under
/// the probes), and the same ended by SIGINT: within 3 s of the banner, within 1 s of SIGINT.
fn spawned_ends_on_time(py: &Python, args: &[&str]) {
    let path = py.script("parked_forever.py");
    let mut argv = py.argv(&path);
    argv.push("--now".into());
    for sigint in [false, true] {
        let mut all: Vec<&str> = args.to_vec();
        if !sigint {
            all.extend(["-d", "2"]);
        }
        all.push("--");
        all.extend(argv.iter().map(String::as_str));
        let mut cmd = Command::new(pyprobe_bin());
        cmd.args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if py.trampoline {
            cmd.env("PYTHONPERFSUPPORT", "1");
        }
        let mut p = Guard::spawn(&mut cmd);
        let stderr = p.child().stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        });
        let banner = Instant::now() + Duration::from_secs(20);
        while !rx
            .recv_timeout(Duration::from_millis(100))
            .is_ok_and(|l| l.starts_with("Tracing"))
        {
            assert!(Instant::now() < banner && p.alive(), "{all:?}: no banner");
        }
        let armed = Instant::now();
        let limit = if sigint {
            // Long enough for every worker to park inside a traced call.
            thread::sleep(Duration::from_millis(500));
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(p.pid(), libc::SIGINT) };
            Duration::from_secs(1)
        } else {
            Duration::from_secs(3)
        };
        let from = Instant::now();
        while p.alive() && from.elapsed() < Duration::from_secs(20) {
            thread::sleep(Duration::from_millis(10));
        }
        let took = if sigint {
            from.elapsed()
        } else {
            armed.elapsed()
        };
        if p.alive() {
            // A pyprobe stuck in the kernel's detach waits for the parked workers: end them,
            // or it (and this test) would wait forever.
            kill_children(p.pid());
        }
        let said: Vec<String> = rx.try_iter().collect();
        assert!(
            took < limit,
            "{all:?} ended {took:?} after {}\n{}",
            if sigint { "SIGINT" } else { "its banner" },
            said.join("\n")
        );
    }
}

/// `pyprobe ARGS --pid P` on a parked service, then SIGINT: ends within a second, and another
/// pyprobe starting meanwhile on another process is not held up.
fn ends_on_sigint(py: &Python, args: &[&str]) {
    let mut svc = Service::start(py);
    let pid = svc.pid().to_string();
    let mut all = args.to_vec();
    all.extend(["--pid", &pid]);
    let mut p = Pyprobe::new(&all).start();
    svc.park();
    thread::sleep(Duration::from_millis(300));
    let mut other = Workload::script("sleepers.py").ready();
    let other_pid = other.pid().to_string();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(p.pid(), libc::SIGINT) };
    let sent = Instant::now();
    let second = thread::spawn(move || {
        let t = Instant::now();
        let g = Pyprobe::new(&["gc", "--pid", &other_pid, "-d", "1"]).start();
        let banner = t.elapsed();
        g.finish();
        banner
    });
    let status = loop {
        if let Ok(Some(st)) = p.child().try_wait() {
            break Some(st);
        }
        if sent.elapsed() > Duration::from_secs(20) {
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let took = sent.elapsed();
    let err: Vec<String> = p.stderr.try_iter().collect();
    assert!(status.is_some(), "{args:?} still running 20 s after SIGINT");
    assert!(
        took < Duration::from_secs(1),
        "{args:?} ended {took:?} after SIGINT\n{}",
        err.join("\n")
    );
    let banner = second.join().unwrap();
    assert!(
        banner < Duration::from_secs(5),
        "{args:?}: a second pyprobe took {banner:?} to attach"
    );
    assert!(svc.guard.alive(), "{args:?}: the service died");
    assert!(other.alive(), "{args:?}: the other process died");
    assert_no_breakpoint_left(svc.pid());
}

/// The commands that time returns (pycount --latency, pyflow), each run by the checks below on
/// every kind of source; the loops say which command, `on_each_python` which source, before
/// the checks start.
const TIMED: [&[&str]; 2] = [
    &["count", "--latency"],
    &["flow", "--filter", "wait_*", "-o", "/dev/null"],
];

/// `check` on each interpreter of `pythons()`, saying which before it starts.
fn on_each_python(check: impl Fn(&Python)) {
    for (what, py) in pythons() {
        eprintln!("{what}");
        check(&py);
    }
}

#[test]
fn pycount_latency_and_pyflow_end_on_time_and_on_sigint_over_parked_workers() {
    on_each_python(|py| {
        for args in TIMED {
            eprintln!("{args:?}");
            ends_after_duration(py, args);
            ends_on_sigint(py, args);
        }
    });
}

#[test]
fn pycount_latency_and_pyflow_on_a_command_whose_workers_park_end_on_time() {
    on_each_python(|py| {
        for args in TIMED {
            eprintln!("{args:?}");
            spawned_ends_on_time(py, args);
        }
    });
}

#[test]
fn imports_end_on_time_and_on_sigint_over_parked_workers() {
    // Imports need the USDT probes: Debian's 3.11 and sid's 3.14.
    for py in [Python::debian(), Python::sid("3.14")] {
        ends_after_duration(&py, &["imports"]);
        ends_on_sigint(&py, &["imports"]);
    }
}

#[test]
fn the_agent_ends_on_sigterm_over_parked_workers_it_timed() {
    const COMM: &str = "parkedwork";
    on_each_python(|py| {
        let mut svc = Service::start_as(py, Some(COMM));
        // Timed (--latency): the probes on the parked calls' returns, not watchpoints.
        let agent = Agent::start(&[
            "--exclude-comm",
            "python*",
            "--filter",
            "wait_*",
            "--latency",
            "--max-overhead",
            "1000",
        ]);
        let pid = svc.pid().to_string();
        agent.wait_for(
            "pyprobe_function_probes_active",
            &[("pid", &pid)],
            Duration::from_secs(20),
        );
        svc.park();
        // The parked calls were timed from their start.
        thread::sleep(Duration::from_millis(300));
        let agent_pid = agent.guard.pid();
        let sent = Instant::now();
        let (ok, said) = agent.terminate();
        let took = sent.elapsed();
        assert!(ok, "{said}");
        assert!(
            took < Duration::from_millis(1500),
            "agent {agent_pid} ended {took:?} after SIGTERM\n{said}"
        );
        assert!(svc.guard.alive());
        assert_no_breakpoint_left(svc.pid());
    });
}

/// SIGKILLs the children of `pid` (the command a pyprobe started).
fn kill_children(pid: i32) {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
    {
        let path = task.unwrap().path().join("children");
        for child in std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
        {
            if let Ok(c) = child.parse::<i32>() {
                // SAFETY: a signal to a process this test's pyprobe started.
                unsafe { libc::kill(c, libc::SIGKILL) };
            }
        }
    }
}

/// Returns are taken by plain uprobes on `ret` instructions: no return address on a parked
/// worker's stack is diverted into the kernel's `[uprobes]` page, as a uretprobe's are (each
/// such pending return held the detach).
#[test]
fn no_return_address_is_hijacked_while_timing_calls() {
    for (what, py) in pythons() {
        let mut svc = Service::start(&py);
        let pid = svc.pid().to_string();
        let p = Pyprobe::new(&["count", "--latency", "--pid", &pid, "-d", "2"]).start();
        svc.park();
        let hijacked = hijacked_returns(svc.pid());
        let (out, err) = p.finish();
        assert!(out.contains("tick"), "{what}: {out}\n{err}");
        assert_eq!(
            hijacked, 0,
            "{what}: return addresses diverted to [uprobes]"
        );
        assert_no_breakpoint_left(svc.pid());
    }
}

/// Words on the stacks of the process's threads (from each one's stack pointer, up to 64 KiB)
/// that point into the kernel's `[uprobes]` page: the return addresses a uretprobe diverted.
fn hijacked_returns(pid: i32) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let range = |line: &str| {
        let (lo, hi) = line.split_whitespace().next()?.split_once('-')?;
        Some((
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        ))
    };
    let Some((lo, hi)) = maps
        .lines()
        .find(|l| l.ends_with("[uprobes]"))
        .and_then(range)
    else {
        return 0;
    };
    let target = pyprobe::target::Target::from_pid(pid).unwrap();
    let mut found = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid = task.unwrap().file_name();
        let Ok(sys) = std::fs::read_to_string(format!(
            "/proc/{pid}/task/{}/syscall",
            tid.to_string_lossy()
        )) else {
            continue;
        };
        // "NR arg1..arg6 sp pc" while blocked in a system call.
        let fields: Vec<&str> = sys.split_whitespace().collect();
        let Some(sp) = fields
            .get(7)
            .and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        else {
            continue;
        };
        let end = maps
            .lines()
            .filter_map(range)
            .find(|&(a, b)| (a..b).contains(&sp))
            .map_or(sp, |(_, b)| b);
        let len = (end - sp).min(64 << 10) as usize;
        let Ok(stack) = target.read_memory(sp, len) else {
            continue;
        };
        found += stack
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
            .filter(|w| (lo..hi).contains(w))
            .count();
    }
    found
}

/// No breakpoint of any probe left in the service, allowing the kernel 2 s to finish removing
/// them (a link's last reference may be dropped after its holder has exited).
fn assert_no_breakpoint_left(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = breakpoints_left(pid);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "breakpoints left in {pid}: {left:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Places of the interpreter where a breakpoint is still written: its USDT function probes
/// where it has them, and every byte of `_PyEval_EvalFrameDefault` (entry and returns).
fn breakpoints_left(pid: i32) -> Vec<String> {
    let t = pyprobe::target::Target::from_pid(pid).unwrap();
    let mut left = Vec::new();
    if let Some(f) = t.elf.symbol_info("_PyEval_EvalFrameDefault") {
        let live = t
            .read_memory(t.runtime_addr(f.addr), f.size as usize)
            .unwrap();
        let file = t.file_bytes(f.addr, f.size as usize).unwrap();
        if live != file {
            left.push("_PyEval_EvalFrameDefault".to_string());
        }
    }
    if t.elf.probe("function__return").is_some() {
        left.extend(uprobes_in(pid));
    }
    left
}
