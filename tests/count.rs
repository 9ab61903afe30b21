//! pycount against real CPython 3.11 processes with real BPF: exact counts, filters, latency,
//! `-- COMMAND`, clean detach, and the error paths.
mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::known_calls::*;
use common::*;

#[test]
fn counts_every_call_exactly_by_pid() {
    let report = Pyprobe::new(&["count", "--json"])
        .trace(Workload::script("known_calls.py"))
        .report();
    assert_known_counts(&report);
}

#[test]
fn counts_stay_exact_with_latency_on_a_spawned_command() {
    let (stdout, _) = Pyprobe::new(&["count", "--latency", "--json"])
        .spawn(Workload::script("known_calls.py"))
        .run_with_go_ok();
    let report = last_json(&stdout);
    assert_known_counts(&report);
    // Every call made after attach was paired: entries and returns match one to one.
    for f in report["functions"].as_array().unwrap() {
        if f["file"].as_str().unwrap().ends_with("/known_calls.py") {
            assert_eq!(f["timed"], f["count"], "{f}");
        }
    }
    assert_eq!(report["lost"]["unpaired_returns"], 0);
    assert_eq!(report["lost"]["too_deep"], 0);
}

#[test]
fn pycount_name_runs_the_count_command() {
    assert_help_under_name("pycount", &["--filter", "--latency"]);
}

fn names_in(report: &serde_json::Value) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (str_at(f, "name"), f["count"].as_u64().unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn filter_exact_name() {
    let report = Pyprobe::new(&["count", "--filter", "func1", "--json"])
        .trace(Workload::script("known_calls.py"))
        .report();
    assert_eq!(names_in(&report), [("func1".to_string(), 1000)]);
}

#[test]
fn filter_prefix_within_a_file() {
    let report = Pyprobe::new(&["count", "--filter", "known_calls.py:func*", "--json"])
        .trace(Workload::script("known_calls.py"))
        .report();
    assert_eq!(
        names_in(&report),
        [
            ("func1".to_string(), 1000),
            ("func2".to_string(), 200),
            ("func3".to_string(), 30)
        ]
    );
}

#[test]
fn filter_prefix_anywhere_selects_only_matching_names() {
    let report = Pyprobe::new(&["count", "--filter", "fun*", "--filter", "raiser", "--json"])
        .trace(Workload::script("known_calls.py"))
        .report();
    let names = names_in(&report);
    assert!(
        names
            .iter()
            .all(|(n, _)| n.starts_with("fun") || n == "raiser"),
        "{names:?}"
    );
    let known = counts_by_name(&report, "/known_calls.py");
    let known: Vec<(&str, u64)> = known.iter().map(|(n, _, c)| (n.as_str(), *c)).collect();
    assert_eq!(
        known,
        [
            ("func1", 1000),
            ("func2", 200),
            ("func3", 30),
            ("raiser", 400)
        ]
    );
}

#[test]
fn filter_file_and_name_keeps_same_named_functions_apart() {
    let report = Pyprobe::new(&["count", "--filter", "known_calls.py:__init__", "--json"])
        .trace(Workload::script("known_calls.py"))
        .report();
    let rows = counts_by_name(&report, "/known_calls.py");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.2).collect::<Vec<_>>(), [21, 30]);
    assert_eq!(
        report["functions"].as_array().unwrap().len(),
        2,
        "nothing from other files"
    );
    let report = Pyprobe::new(&["count", "--filter", "calls.py:__init__", "--json"])
        .trace(Workload::script("known_calls.py"))
        .report();
    assert_eq!(
        report["functions"].as_array().unwrap().len(),
        0,
        "calls.py is not known_calls.py"
    );
}

#[test]
fn a_call_made_at_import_time_is_counted() {
    let (stdout, _) = Pyprobe::new(&["count", "--json", "--filter", "called_at_import"])
        .spawn(Workload::script("import_time_call.py"))
        .run_with_go_ok();
    let report = last_json(&stdout);
    assert_eq!(names_in(&report), [("called_at_import".to_string(), 1)]);
}

#[test]
fn latency_percentiles_match_the_workloads_own_timing() {
    let t = Pyprobe::new(&["count", "--latency", "--filter", "sleep_*", "--json"])
        .trace(Workload::script("sleepers.py"));
    assert_sleepers_latency(&t.report(), &t.workload.stderr);
}

/// pycount --latency's own time (issue 22): the parent's own time is its spin as it timed it
/// itself (a quarter of its total, so no total passes for it), its total less its own is its
/// callees' total, a leaf's own is its total; the default order with --latency is by own time
/// (by count tiny would lead, by total parent). On the USDT source (3.11) and the eval-frame
/// uprobe's (3.10).
fn own_time_is_total_less_callees(py: Python) {
    let t = Pyprobe::new(&["count", "--latency", "--json"])
        .trace(Workload::script("own_time.py").on(&py));
    let (report, err) = (t.report(), t.workload.stderr);
    let spun = serde_json::from_str::<serde_json::Value>(
        err.lines().rev().find(|l| l.starts_with('{')).unwrap(),
    )
    .unwrap()["spun_ns"]
        .as_u64()
        .unwrap();
    let fs = report["functions"].as_array().unwrap();
    let get = |name: &str| {
        fs.iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {report}"))
    };
    let n = |f: &serde_json::Value, k: &str| f[k].as_u64().unwrap();
    let (parent, child, tiny) = (get("parent"), get("child"), get("tiny"));
    assert_eq!(
        [n(parent, "count"), n(child, "count"), n(tiny, "count")],
        [5, 10, 1000]
    );
    assert_eq!([n(parent, "timed"), n(child, "timed")], [5, 10]);
    // A leaf: nothing to take out.
    assert_eq!(n(child, "own_ns"), n(child, "total_ns"));
    assert!(n(child, "own_ns") >= 300_000_000, "{child}");
    // The parent's own time is its spin: at least what it timed, and past it only by the
    // calls' own cost (probes included), far from its total (above 400 ms).
    let own = n(parent, "own_ns");
    assert!(
        own >= spun && own < spun + spun / 4 + 5_000_000,
        "parent own {own} ns, spun {spun} ns: {parent}"
    );
    // Its callees' time, as they were timed (each clock read a moment apart).
    let callees = n(parent, "total_ns") - own;
    assert!(
        callees.abs_diff(n(child, "total_ns")) < 1_000_000,
        "parent's callees {callees} ns, child's total {}",
        n(child, "total_ns")
    );
    let order: Vec<&str> = fs.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(order[..2], ["child", "parent"], "{order:?}");
}

tests_of!(own_time_is_total_less_callees {
    own_time_on_3_11: (Python::debian());
    own_time_on_3_10: (Python::pyenv("3.10"));
});

/// Reads the progress counter the forever.py workload prints.
fn progress(w: &mut Guard, lines: &mut impl Iterator<Item = String>) -> u64 {
    let _ = w;
    lines
        .next()
        .expect("workload alive")
        .trim()
        .parse()
        .expect("a count")
}

#[derive(Clone, Copy, Debug)]
enum Ending {
    Duration,
    Sigterm,
    Sigkill,
}

fn detach_leaves_target_clean(ending: Ending, latency: bool) {
    use std::io::BufRead;
    let mut w = Workload::script("forever.py").raw();
    let pid = w.pid();
    let stdout = w.child().stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok);
    assert_eq!(lines.next().as_deref(), Some("ready"));
    assert!(
        semaphores(pid).iter().all(|(_, v)| *v == 0),
        "clean before: {:?}",
        semaphores(pid)
    );

    let pid_s = pid.to_string();
    let mut args = vec!["count", "--pid", &pid_s];
    if latency {
        args.push("--latency");
    }
    if matches!(ending, Ending::Duration) {
        args.extend(["--duration", "1"]);
    }
    let p = Pyprobe::new(&args).start();
    let during = semaphores(pid);
    assert!(
        during
            .iter()
            .any(|(n, v)| n == "function__return" && *v >= 1),
        "{during:?}"
    );
    if latency {
        assert!(
            during.iter().all(|(_, v)| *v >= 1),
            "entry needs tracing mode: {during:?}"
        );
    }
    // Some ticks counted first: on a busy machine the target may not run for a while.
    thread::sleep(Duration::from_millis(300));
    match ending {
        Ending::Duration => {}
        Ending::Sigterm => unsafe {
            libc::kill(p.pid(), libc::SIGTERM);
        },
        Ending::Sigkill => unsafe {
            libc::kill(p.pid(), libc::SIGKILL);
        },
    }
    let (out, err) = p.finish();
    if !matches!(ending, Ending::Sigkill) {
        assert!(
            out.contains("tick"),
            "report printed on {ending:?}: {out}\n{err}"
        );
    }
    // The kernel lowers the semaphores as the links go, also after SIGKILL (fd teardown).
    let mut after = semaphores(pid);
    for _ in 0..50 {
        if after.iter().all(|(_, v)| *v == 0) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
        after = semaphores(pid);
    }
    assert!(
        after.iter().all(|(_, v)| *v == 0),
        "{ending:?}: semaphores left raised: {after:?}"
    );
    let a = progress(&mut w, &mut lines);
    let b = progress(&mut w, &mut lines);
    assert!(b > a, "target keeps running after pycount ({a} then {b})");
    assert!(w.alive());
}

tests_of!(detach_leaves_target_clean {
    detach_after_duration_restores_semaphores: (Ending::Duration, true);
    detach_after_sigterm_restores_semaphores: (Ending::Sigterm, false);
    detach_after_sigkill_restores_semaphores: (Ending::Sigkill, true);
});

#[test]
fn unknown_pid_is_refused() {
    assert_clean_failure(
        &["count", "--pid", "4194304"],
        "no process with PID 4194304",
    );
}

#[test]
fn a_pid_out_of_the_kernel_s_range_is_refused_as_such() {
    assert_clean_failure(
        &["count", "--pid", "4294967296"],
        "is not a process ID: PIDs run from 1 to 4194304",
    );
    assert_clean_failure(&["count", "--pid", "0"], "is not a process ID");
}

#[test]
fn a_malformed_usdt_note_is_named_not_mistaken_for_a_missing_process() {
    // A copy of Debian's 3.11 whose function__entry note puts its semaphore at 0x10, outside
    // the file: libbpf alone would say "No such process".
    let dir = TempDir::new("bogus-note");
    let mut elf = std::fs::read(PYTHON).unwrap();
    let note = b"python\0function__entry\0";
    let at = elf
        .windows(note.len())
        .position(|w| w == note)
        .expect("the function__entry note");
    elf[at - 8..at].copy_from_slice(&0x10u64.to_le_bytes());
    let python = dir.path().join("python3.11");
    std::fs::write(&python, elf).unwrap();
    std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let python = python.to_string_lossy().into_owned();
    assert_clean_failure(
        &["count", "--latency", "--", &python, "-c", "pass"],
        "the USDT note of python:function__entry puts its semaphore at 0x10, outside the \
         file's loaded segments (a malformed note)",
    );
}

#[test]
fn a_process_that_is_not_python_is_refused() {
    assert_refuses_a_process_that_is_not_python("count");
}

#[test]
fn a_python_without_probes_is_refused_where_no_exact_way_exists() {
    // Builds without probes are traced through _PyEval_EvalFrameDefault (tests/versions.rs),
    // except 3.11, which inlines calls and has no perf trampoline to route them.
    assert_count_refuses_known_calls_on(&Python::pyenv("3.11"), "was built without USDT probes");
}

#[test]
fn a_bad_filter_is_refused_before_anything_starts() {
    assert_clean_failures(&[
        (
            &["count", "--pid", "1", "--filter", "a*b"],
            "invalid filter \"a*b\"",
        ),
        (
            &["count", "--pid", "1", "--filter", "x.py:"],
            "NAME is empty",
        ),
    ]);
}

#[test]
fn no_target_is_a_usage_error() {
    assert_clean_failure(&["count"], "no target");
}

#[test]
fn not_root_is_refused_with_the_fix() {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(pyprobe_bin())
        .args(["count", "--pid", "1"])
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("needs root"), "{err}");
}

#[test]
fn a_version_without_function_probes_is_explained() {
    let sid = Python::sid("3.13");
    let g = assert_refused_on_idle(&sid, "count", "restart it with PYTHONPERFSUPPORT=1");
    let pid = g.pid().to_string();
    let out = Pyprobe::new(&["probes", "--pid", &pid]).run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("CPython 3.13") && text.contains("gc__start"),
        "{text}"
    );
}

/// Runs a workload under sid's CPython 3.15 (inside the chroot, reached through /proc/PID/root)
/// with `pyprobe ARGS --filter <its path>:* --json -- ...`, and returns pycount's report and the
/// workload's path inside the chroot.
fn count_on_3_15(args: &[&str], script_name: &str) -> (serde_json::Value, String) {
    let py = Python::sid("3.15");
    let inside = py.script(script_name);
    let filter = format!("{inside}:*");
    let mut args = args.to_vec();
    args.extend(["--json", "--filter", &filter]);
    let (stdout, _) = Pyprobe::new(&args)
        .spawn(Workload::script(script_name).on(&py))
        .run_with_go_ok();
    (last_json(&stdout), inside)
}

#[test]
fn latency_pairs_across_exception_exits_on_python_3_15() {
    // 3.15 fires no return when a frame exits by an exception: the callers' returns must still
    // find their entries (the frames above are dropped and counted as exits_unseen).
    let (report, _) = count_on_3_15(&["count", "--latency"], "exception_exits.py");
    for name in ["user2", "user3"] {
        let f = report["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap();
        assert_eq!(
            (f["count"].as_u64(), f["timed"].as_u64()),
            (Some(50), Some(50)),
            "{name}: {report}"
        );
    }
    assert!(
        report["lost"]["exits_unseen"].as_u64().unwrap() > 0,
        "{report}"
    );
}

#[test]
fn counts_exactly_on_python_3_15_from_entries() {
    // 3.15 has function probes again, but returns do not fire on exception exits: pycount counts
    // entries there.
    let (report, inside) = count_on_3_15(&["count"], "known_calls.py");
    let got: BTreeMap<(String, u32), u64> = counts_by_name(&report, &inside)
        .into_iter()
        .map(|(n, l, c)| ((n, l), c))
        .collect();
    let want = known_calls();
    for name in [
        "fib",
        "raiser",
        "catcher",
        "method",
        "thread_work",
        "func1",
        "func2",
        "func3",
        "__init__",
        "größe",
    ] {
        for (key, count) in want.iter().filter(|(k, _)| k.0 == name) {
            assert_eq!(got.get(key), Some(count), "{key:?}: {got:?}");
        }
    }
}

#[test]
fn a_full_function_table_is_reported_not_silent() {
    let report = Pyprobe::new(&["count", "--max-functions", "4", "--json"])
        .trace(Workload::script("known_calls.py"))
        .report();
    let kept = report["functions"].as_array().unwrap().len();
    assert!(kept <= 4, "{kept} functions kept in a table of 4");
    assert!(
        report["lost"]["functions_full"].as_u64().unwrap() > 0,
        "{}",
        report["lost"]
    );
    assert_eq!(report["lost"]["function_table_size"], 4);
    // The text report says it too.
    let mut w = Workload::script("known_calls.py").ready();
    let pid = w.pid().to_string();
    let p = Pyprobe::new(&["count", "--pid", &pid, "--max-functions", "4"]).start();
    w.send_line("go");
    let _ = w.wait_output(Duration::from_secs(60));
    let (out, _) = p.finish();
    assert!(
        out.contains("WARNING: ") && out.contains("function table full"),
        "{out}"
    );
}

#[test]
fn interval_reports_only_the_calls_made_since_the_last_one() {
    let (stdout, _) = Pyprobe::new(&["count", "--json", "--interval", "0.2", "--filter", "tick"])
        .spawn(Workload::script("paced.py"))
        .run_with_go_ok();
    let per_report: Vec<u64> = json_lines(&stdout)
        .iter()
        .map(|r| r["total_calls"].as_u64().unwrap())
        .collect();
    assert!(
        per_report.len() >= 3,
        "one report per interval: {per_report:?}"
    );
    assert!(
        per_report.iter().all(|&n| n < 100),
        "each report holds only its interval: {per_report:?}"
    );
    assert_eq!(
        per_report.iter().sum::<u64>(),
        100,
        "reports add up to the calls made: {per_report:?}"
    );
}

#[test]
fn probes_lists_every_probe_and_its_state() {
    let w = Workload::script("forever.py").ready();
    let pid = w.pid().to_string();
    let out = Pyprobe::new(&["probes", "--pid", &pid, "--json"]).run();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "3.11.2");
    assert_eq!(v["interpreter"], PYTHON);
    let probes = v["probes"].as_array().unwrap();
    let names: Vec<&str> = probes.iter().map(|p| p["name"].as_str().unwrap()).collect();
    for want in [
        "function__entry",
        "function__return",
        "line",
        "gc__start",
        "gc__done",
        "import__find__load__start",
        "import__find__load__done",
        "audit",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for p in probes {
        assert_eq!(p["works"], true, "{p}");
        assert_eq!(p["semaphore_value"], 0, "{p}");
    }
    let entry = probes
        .iter()
        .find(|p| p["name"] == "function__entry")
        .unwrap();
    assert!(
        entry["note"].as_str().unwrap().contains("tracing mode"),
        "{entry}"
    );
    let text = Pyprobe::new(&["probes", "--pid", &pid]).run();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("function__return") && text.contains("CPython 3.11.2"),
        "{text}"
    );
}

#[test]
fn short_lived_threads_do_not_exhaust_the_pairing_table() {
    let report = Pyprobe::new(&["count", "--latency", "--filter", "thread_fn", "--json"])
        .trace(Workload::script("many_threads.py"))
        .report();
    let f = &report["functions"][0];
    assert_eq!(f["count"], 1500, "{report}");
    assert_eq!(f["timed"], 1500, "{report}");
    assert_eq!(report["lost"]["threads_full"], 0);
}

#[test]
fn an_interpreter_replaced_on_disk_is_still_traced() {
    // What a package upgrade does to a running service: its executable is replaced by a new
    // file. The probes must go on the file the process runs, reached through /proc/PID/exe.
    let dir = TempDir::new("replaced");
    let python = dir.path().join("python3.11");
    std::fs::copy(PYTHON, &python).unwrap();
    let w = Workload::script("known_calls.py")
        .on(&Python::at(&python))
        .ready();
    std::fs::remove_file(&python).unwrap();
    std::fs::copy(PYTHON, &python).unwrap();
    let pid = w.pid().to_string();
    let p = Pyprobe::new(&["count", "--pid", &pid, "--json", "--filter", "fib"]).start();
    w.release("go", Duration::from_secs(60));
    let (out, err) = p.finish();
    let report: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}\n{err}"));
    assert_eq!(names_in(&report), [("fib".to_string(), 21891)]);
}

#[test]
fn a_thread_id_is_refused_with_its_process_id() {
    let g = Workload::code(
        "import threading, time\nt = threading.Thread(target=time.sleep, args=(30,))\nt.start()\nt.join()",
    )
    .raw();
    thread::sleep(Duration::from_millis(500));
    let pid = g.pid();
    let tid = other_thread(pid, "a second thread");
    assert_clean_failure(
        &["count", "--pid", &tid.to_string()],
        &format!("{tid} is a thread of process {pid}: use --pid {pid}"),
    );
}

/// --tid counts one thread's calls, in the kernel: the worker's 30, none of the main thread's 20
/// (issue 22's one vocabulary: count takes --tid as flow, stacks, record and top do).
#[test]
fn tid_counts_one_threads_calls() {
    const SCRIPT: &str = "import sys, threading\n\
def in_worker():\n    pass\n\
def in_main():\n    pass\n\
go = threading.Event()\n\
def work():\n    go.wait()\n    for _ in range(30):\n        in_worker()\n\
t = threading.Thread(target=work)\nt.start()\n\
print('ready', flush=True)\nsys.stdin.readline()\n\
for _ in range(20):\n    in_main()\n\
go.set()\nt.join()\n";
    let w = Workload::code(SCRIPT).ready();
    let pid = w.pid();
    let tid = other_thread(pid, "the worker thread");
    let (pid, tid) = (pid.to_string(), tid.to_string());
    let p = Pyprobe::new(&[
        "count", "--pid", &pid, "--tid", &tid, "--json", "-f", "in_*",
    ])
    .start();
    w.release("go", Duration::from_secs(30));
    let (stdout, stderr) = p.finish();
    let report = last_json(&stdout);
    assert_eq!(
        names_in(&report),
        [("in_worker".to_string(), 30)],
        "{stderr}"
    );
    assert_clean_failure(
        &["count", "--pid", &pid, "--tid", "1", "--source", "watch"],
        "--source watch counts every thread's calls",
    );
}

#[test]
fn a_spawned_command_that_never_runs_python_can_be_interrupted() {
    let p = Pyprobe::new(&["count", "--", "sleep", "30"]).launch();
    thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(p.pid(), libc::SIGTERM) };
    let started = std::time::Instant::now();
    let out = p.wait_output(Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "pyprobe did not stop"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("interrupted before it ran a Python interpreter"),
        "{err}"
    );
}

/// A function in a file whose path is longer than the kernel reads whole keeps its file name,
/// which `FILE:NAME` matches, and the cut is reported: on 3.11's USDT probes, on 3.12's
/// eval-frame source and on 3.15's entry probes.
#[test]
fn a_function_in_a_file_with_a_very_long_path_is_named_by_its_end() {
    let dir = TempDir::new("long-count");
    let rel = long_path(&dir, 600, "deep_target.py");
    let host = dir.write(
        &rel,
        "def target():\n    pass\n\n\ndef other():\n    pass\n\n\n\
         for _ in range(5):\n    target()\nother()\n",
    );
    for py in [Python::debian(), Python::pyenv("3.12"), Python::sid("3.15")] {
        let script = py.file(&host, &rel);
        assert!(script.len() > 600, "{script}");
        let out = Pyprobe::new(&["count", "--json", "--filter", "deep_target.py:target"])
            .spawn(Workload::path(&script).on(&py))
            .run_with_go();
        let err = &out.stderr;
        assert!(out.ok, "{}: {err}", py.exe);
        let report = last_json(&out.stdout);
        let fs = report["functions"].as_array().unwrap();
        assert_eq!(fs.len(), 1, "{}: {report}", py.exe);
        assert_eq!(
            (&fs[0]["name"], &fs[0]["count"]),
            (&"target".into(), &5.into())
        );
        let file = fs[0]["file"].as_str().unwrap();
        assert!(
            file.ends_with("/deep_target.py") && script.ends_with(file),
            "{}: {file:?} is the end of {script:?}",
            py.exe
        );
        assert_eq!(fs[0]["file_truncated"], true);
        // <module>, target and other were named from that path.
        assert_eq!(report["lost"]["paths_truncated"], 3, "{}: {report}", py.exe);
    }
}

/// A thread of process `pid` other than its main one (`what`, to say which was missing).
fn other_thread(pid: i32, what: &str) -> i32 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|&t| t != pid)
        .expect(what)
}

/// The def line of the function tagged `# line:TAG` in a workload.
fn tagged_def(script_name: &str, tag: &str) -> u32 {
    marked_line(script_name, &format!("# line:{tag}")) as u32
}

/// A dotted NAME is a qualified name (`co_qualname`, 3.11+): `A.run` counts A's method only,
/// where a plain `run` counts every function of that name; on 3.11's USDT probes and on the
/// eval-frame source of 3.12 and 3.14.
#[test]
fn a_dotted_filter_matches_qualified_names_exactly() {
    let s = "qualnames.py";
    let def = |tag| tagged_def(s, tag);
    for py in [Python::debian(), Python::pyenv("3.12"), Python::sid("3.14")] {
        for (filter, want) in [
            ("A.run", vec![("run", def("A.run"), 3)]),
            ("B.run", vec![("run", def("B.run"), 5)]),
            // B's methods, and the body of its class Inner, run once to make it.
            (
                "B.*",
                vec![
                    ("run", def("B.run"), 5),
                    ("Inner", def("B.Inner"), 1),
                    ("run", def("B.Inner.run"), 2),
                ],
            ),
            ("B.Inner.run", vec![("run", def("B.Inner.run"), 2)]),
            ("qualnames.py:A.run", vec![("run", def("A.run"), 3)]),
            (
                "run.<locals>.helper",
                vec![("helper", def("run.<locals>.helper"), 7)],
            ),
            (
                "run",
                vec![
                    ("run", def("A.run"), 3),
                    ("run", def("B.run"), 5),
                    ("run", def("B.Inner.run"), 2),
                    ("run", def("run"), 7),
                ],
            ),
        ] {
            let Ran { stdout, stderr, ok } = Pyprobe::new(&["count", "--json", "--filter", filter])
                .spawn(Workload::script(s).on(&py))
                .run_with_go();
            assert!(ok, "{} {filter}: {stderr}", py.exe);
            let report = last_json(&stdout);
            let mut want: Vec<(String, u32, u64)> = want
                .iter()
                .map(|&(n, l, c)| (n.to_string(), l, c))
                .collect();
            want.sort();
            assert_eq!(
                counts_by_name(&report, "/qualnames.py"),
                want,
                "{} --filter {filter}",
                py.exe
            );
            assert_eq!(
                report["notes"],
                serde_json::json!([]),
                "{} {filter}",
                py.exe
            );
        }
        // A module-qualified name is no qualified name: said, with what selects it.
        let (stdout, stderr) = Pyprobe::new(&["count", "--json", "--filter", "qualnames.run"])
            .spawn(Workload::script(s).on(&py))
            .run_with_go_ok();
        let report = last_json(&stdout);
        assert_eq!(report["functions"], serde_json::json!([]), "{}", py.exe);
        assert!(
            stderr.lines().any(|l| l
                .starts_with("pyprobe: --filter qualnames.run matched no function that ran: ")
                && l.contains("FILE:NAME")),
            "{}: {stderr}",
            py.exe
        );
    }
}

/// Where no qualified name can be read, a dotted filter is refused with the reason instead of
/// matching nothing: CPython 3.10 has no co_qualname, and 3.15's entry probe gives pyprobe no
/// code object.
#[test]
fn a_dotted_filter_is_refused_where_qualified_names_cannot_be_read() {
    for (py, why) in [
        (Python::pyenv("3.10"), "CPython 3.10 has no qualified names"),
        (Python::sid("3.15"), "no code object"),
    ] {
        let Ran { stdout, stderr, ok } = Pyprobe::new(&["count", "--filter", "A.run"])
            .spawn(Workload::script("qualnames.py").on(&py))
            .run_with_go();
        assert!(!ok, "{}: {stdout}", py.exe);
        assert!(
            stderr.starts_with("pyprobe: error: invalid filter \"A.run\": ")
                && stderr.contains(why),
            "{}: {stderr}",
            py.exe
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("FILE:NAME"), "{stderr}");
    }
}

/// forever.py calls tick() without end: traced for 3.5 s.
fn count_forever(args: &[&str]) -> (String, String, i32) {
    let w = Workload::script("forever.py").ready();
    let pid = w.pid().to_string();
    let mut all = vec!["count", "--pid", &pid, "--json", "-d", "3500ms"];
    all.extend(args);
    let out = Pyprobe::new(&all).run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        w.pid(),
    )
}

/// A session with -d ends by itself and says so instead of asking for Ctrl-C; --quiet keeps
/// the per-second cost estimates to itself (the one total stays).
#[test]
fn a_timed_session_asks_for_no_ctrl_c_and_quiet_keeps_its_estimates() {
    let (out, err, pid) = count_forever(&[]);
    let spends = format!("pyprobe: PID {pid} spends ");
    assert!(err.contains(&spends), "{err}");
    assert!(!err.contains("Ctrl-C"), "{err}");
    let banner = err.lines().find(|l| l.starts_with("Tracing ")).unwrap();
    assert!(banner.ends_with(") for 3.50s."), "{banner}");
    assert!(!last_json(&out)["functions"].as_array().unwrap().is_empty());

    let (out, err, pid) = count_forever(&["-q"]);
    assert!(
        !err.contains(&format!("pyprobe: PID {pid} spends ")),
        "{err}"
    );
    assert!(
        err.contains(&format!("PID {pid} spent ")),
        "the total stays: {err}"
    );
    let tick = counts_by_name(&last_json(&out), "/forever.py");
    assert!(
        tick.iter().any(|(name, _, n)| name == "tick" && *n > 0),
        "{tick:?}"
    );
}

/// A --filter that matches nothing is told on stderr once after 3 s while the session runs,
/// and again at its end, one line per pattern; a pattern that matched is not.
#[test]
fn filters_that_matched_nothing_are_told() {
    let (out, err, _) = count_forever(&[
        "--filter",
        "no_such_fn",
        "--filter",
        "tick",
        "--filter",
        "forever.py:nor_this",
    ]);
    let told: Vec<&str> = err.lines().filter(|l| l.contains("--filter")).collect();
    assert_eq!(
        told,
        [
            "pyprobe: --filter no_such_fn has matched no function that ran in the first 3 s",
            "pyprobe: --filter forever.py:nor_this has matched no function that ran in the first 3 s",
            "pyprobe: --filter no_such_fn matched no function that ran",
            "pyprobe: --filter forever.py:nor_this matched no function that ran",
        ],
        "{err}"
    );
    let counted = counts_by_name(&last_json(&out), "/forever.py");
    assert!(
        counted.iter().all(|(name, _, _)| name == "tick"),
        "{counted:?}"
    );
    assert_eq!(counted.len(), 1, "{counted:?}");
}
