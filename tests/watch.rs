//! pycount's watchpoint source (src/source/watch/): exact counts by --pid on processes that keep
//! running, on Debian's 3.11, pyenv's 3.8, 3.10, 3.11, 3.12 and 3.13 (no probes, no trampoline)
//! and sid's 3.14 and 3.15 in their chroot (the calibration run inside it), for a plain
//! function, a method by Class.method, a class's __init__, a function called from C, one first
//! called after attach, one called in a thread started after attach and a generator function;
//! nested code objects (co_consts); `--source auto` choosing it at once, and falling back where
//! it cannot serve; `-- COMMAND` with functions defined and modules imported as it runs; its
//! refusals; its row in `pyprobe probes` and the code objects `probes --filter` finds.
mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{Guard, Pyprobe, Python, Workload, assert_clean_failure, last_json, probes_row};

/// tests/scripts/watch.py's known calls after "go", by def line.
const GROUP_A: &[&str] = &["target", "Shape.area", "Shape.__init__", "keyed"];
const EXPECT_A: &[(i64, u64)] = &[(12, 1000), (17, 201), (20, 300), (24, 270)];
const GROUP_B: &[&str] = &["late", "in_thread", "gen"];
const EXPECT_B: &[(i64, u64)] = &[(28, 70), (33, 90), (37, 40)];

/// The workload, and its stdout's lines ("ready" already read).
fn workload(py: &Python, args: &[&str]) -> (Guard, mpsc::Receiver<String>) {
    workload_of(py, "watch.py", args)
}

fn workload_of(py: &Python, script: &str, args: &[&str]) -> (Guard, mpsc::Receiver<String>) {
    Workload::script(script)
        .on(py)
        .args(args)
        .quiet()
        .ready_lines()
}

/// Counts `filters` in the running workload from "go" to "done" (then Ctrl-C): the report's
/// (line, count) pairs sorted, and pyprobe's stderr and stdout; the workload must still run after.
fn count(py: &Python, filters: &[&str], args: &[&str]) -> (Vec<(i64, u64)>, String) {
    count_on(py, Some("watch"), "watch.py", filters, args)
}

/// The same with `--source SOURCE` (None: the default, auto) on a workload of watch.py's protocol.
fn count_on(
    py: &Python,
    source: Option<&str>,
    script: &str,
    filters: &[&str],
    args: &[&str],
) -> (Vec<(i64, u64)>, String) {
    let (mut w, lines) = workload_of(py, script, args);
    let pid = w.pid().to_string();
    let mut args = vec!["count", "--pid", &pid, "--json"];
    if let Some(s) = source {
        args.extend(["--source", s]);
    }
    for f in filters {
        args.extend(["--filter", f]);
    }
    let mut p = Pyprobe::new(&args).start();
    w.send_line("go");
    let done = lines.recv_timeout(Duration::from_secs(60));
    assert_eq!(done.as_deref(), Ok("done"), "the workload did not finish");
    // SAFETY: a signal to the pyprobe this test started.
    unsafe { libc::kill(p.pid(), libc::SIGINT) };
    let (status, stdout) = wait_after_sigint(p.child());
    // Its stderr's reader ends at the pipe's end.
    let stderr: Vec<String> =
        std::iter::from_fn(|| p.stderr.recv_timeout(Duration::from_secs(5)).ok()).collect();
    let stderr = stderr.join("\n");
    assert!(status.success(), "pyprobe failed:\n{stderr}");
    assert!(w.alive(), "the workload ended with pyprobe");
    w.send_line("exit");
    py.remove_perf_map(w.pid());
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\n{stderr}"));
    // The report's notes are in its JSON.
    (line_counts(&report), format!("{stderr}\n{stdout}"))
}

/// Waits for pyprobe to end, within 5 s of its SIGINT: (status, stdout).
fn wait_after_sigint(child: &mut std::process::Child) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).ok();
        s
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pyprobe did not end within 5 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, out.join().unwrap())
}

fn exact_on(py: Python) {
    let (counts, stderr) = count(&py, GROUP_A, &[]);
    assert_eq!(counts, EXPECT_A, "{stderr}");
    assert!(
        stderr.contains("hardware watchpoints on 4 functions"),
        "{stderr}"
    );
    let (counts, stderr) = count(&py, GROUP_B, &[]);
    assert_eq!(counts, EXPECT_B, "{stderr}");
}

tests_of!(exact_on {
    exact_on_debian_3_11: (Python::debian());
    exact_on_pyenv_3_8: (Python::pyenv("3.8"));
    exact_on_pyenv_3_10: (Python::pyenv("3.10"));
    exact_on_pyenv_3_11_without_probes: (Python::pyenv("3.11"));
    exact_on_pyenv_3_12_without_the_trampoline: (Python::pyenv("3.12"));
    exact_on_pyenv_3_13_without_the_trampoline: (Python::pyenv("3.13"));
    exact_on_sid_3_14_in_its_chroot: (Python::sid("3.14"));
    exact_on_sid_3_15_in_its_chroot: (Python::sid("3.15"));
});

#[test]
fn a_function_of_a_module_imported_after_attach() {
    // Found by the search a second later; its calls made after that all counted.
    let (counts, stderr) = count(&Python::pyenv("3.12"), &["later_mod"], &["later"]);
    assert_eq!(counts, [(4, 60)], "{stderr}");
    assert!(
        stderr.contains("no function matches later_mod yet"),
        "{stderr}"
    );
    assert!(
        stderr.contains("watch_later.py:4 later_mod was found during the session"),
        "{stderr}"
    );
}

#[test]
fn what_it_cannot_watch_is_refused_in_one_line() {
    let (w, _lines) = workload(&Python::debian(), &[]);
    let pid = w.pid().to_string();
    let base = ["count", "--source", "watch", "--pid", &pid];
    let with = |more: &[&'static str]| -> Vec<String> {
        base.iter().chain(more).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>, expect: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_clean_failure(&args, expect);
    };
    run(
        with(&[]),
        "--source watch counts the functions --filter names",
    );
    run(
        with(&["--filter", "target", "--latency"]),
        "--latency needs the shared probe",
    );
    // Five functions, four debug registers: named, and told how to choose.
    run(
        with(&[
            "--filter",
            "target",
            "--filter",
            "keyed",
            "--filter",
            "late",
            "--filter",
            "in_thread",
            "--filter",
            "gen",
        ]),
        "5 functions match",
    );
}

#[test]
fn taken_debug_registers_are_told() {
    let (w, _lines) = workload(&Python::debian(), &[]);
    let pid = w.pid().to_string();
    let mut first = vec![
        "count",
        "--source",
        "watch",
        "--pid",
        &pid,
        "--duration",
        "20",
    ];
    for f in GROUP_A {
        first.extend(["--filter", f]);
    }
    // Four watchpoints in each thread: none left for a second session.
    let _holder = Pyprobe::new(&first).start();
    assert_clean_failure(
        &[
            "count", "--source", "watch", "--pid", &pid, "--filter", "late",
        ],
        "has no debug register free",
    );
}

/// `pycount [--source watch] --filter early --filter later_mod -- PYTHON watch_command.py`:
/// the (line, count) pairs of its report and pyprobe's stderr.
fn command(py: &Python, source: Option<&str>) -> (Vec<(i64, u64)>, String) {
    let mut args = vec![
        "count",
        "--json",
        "--filter",
        "early",
        "--filter",
        "later_mod",
    ];
    if let Some(s) = source {
        args.extend(["--source", s]);
    }
    let (stdout, stderr) = Pyprobe::new(&args)
        .spawn(Workload::script("watch_command.py").on(py))
        .run_with_go_ok();
    let report = last_json(&stdout);
    (line_counts(&report), format!("{stderr}\n{stdout}"))
}

/// A report's (def line, count) pairs, sorted.
fn line_counts(report: &serde_json::Value) -> Vec<(i64, u64)> {
    let mut counts: Vec<(i64, u64)> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["line"].as_i64().unwrap(), f["count"].as_u64().unwrap()))
        .collect();
    counts.sort();
    counts
}

/// early() found as the command starts (its 100 calls and the 30 of a thread started later),
/// later_mod() in a module imported 1.5 s in (its 60 calls 2.5 s after).
const EXPECT_COMMAND: &[(i64, u64)] = &[(4, 60), (10, 130)];

fn command_exact(py: Python, source: Option<&str>) {
    let (counts, out) = command(&py, source);
    assert_eq!(counts, EXPECT_COMMAND, "{out}");
    assert!(
        out.contains("hardware watchpoints on the functions as the command defines them"),
        "{out}"
    );
    assert!(
        out.contains("watch_later.py:4 later_mod was found during the session"),
        "{out}"
    );
}

tests_of!(command_exact {
    a_command_on_debian_3_11: (Python::debian(), Some("watch"));
    a_command_on_pyenv_3_12_whose_libpython_is_mapped_after_exec:
        (Python::pyenv("3.12"), Some("watch"));
});

#[test]
fn auto_takes_watchpoints_for_a_command_where_nothing_else_serves() {
    // pyenv's 3.11: no probes; the eval-frame uprobe does not serve 3.11.
    command_exact(Python::pyenv("3.11"), None);
}

#[test]
fn auto_keeps_the_probes_for_a_command_that_has_them() {
    // Debian's 3.11 counts from the command's first instruction on its USDT probes.
    let (counts, out) = command(&Python::debian(), None);
    assert_eq!(counts, EXPECT_COMMAND, "{out}");
    assert!(!out.contains("watchpoints"), "{out}");
}

/// `--source auto` by --pid: watchpoints at once (no second on the shared probe), exact.
fn auto_exact_on(py: Python) {
    let (counts, out) = count_on(&py, None, "watch.py", GROUP_A, &[]);
    assert_eq!(counts, EXPECT_A, "{out}");
    assert!(out.contains("hardware watchpoints on 4 functions"), "{out}");
    assert!(!out.contains("counting on"), "a trial: {out}");
}

tests_of!(auto_exact_on {
    auto_takes_watchpoints_on_debian_3_11_over_its_usdt_probes: (Python::debian());
    auto_takes_watchpoints_on_pyenv_3_8_over_the_eval_frame_uprobe: (Python::pyenv("3.8"));
    auto_takes_watchpoints_on_pyenv_3_11_without_probes: (Python::pyenv("3.11"));
    auto_takes_watchpoints_on_pyenv_3_13_without_the_trampoline: (Python::pyenv("3.13"));
    auto_takes_watchpoints_on_pyenv_3_12_with_the_trampoline_without_a_trial:
        (Python::pyenv("3.12").with_trampoline());
});

#[test]
fn auto_takes_a_glob_matching_a_few_functions() {
    let (counts, out) = count_on(&Python::debian(), None, "watch.py", &["Shape.*"], &[]);
    assert_eq!(counts, [(17, 201), (20, 300)], "{out}");
    assert!(out.contains("hardware watchpoints on 2 functions"), "{out}");
}

#[test]
fn auto_falls_back_to_the_probes_beyond_four_functions_and_says_so() {
    let five = ["target", "keyed", "late", "in_thread", "Shape.__init__"];
    let (counts, out) = count_on(&Python::debian(), None, "watch.py", &five, &[]);
    assert_eq!(
        counts,
        [(12, 1000), (17, 201), (24, 270), (28, 70), (33, 90)],
        "{out}"
    );
    assert!(
        out.contains("(the shared probe: 5 functions match, more than 4 watchpoints can watch)"),
        "{out}"
    );
}

/// Nested functions, lambdas and (before 3.12) comprehensions, found through co_consts.
fn nested_on(py: Python, expect: &[(i64, u64)]) {
    let filters = [
        "outer.<locals>.inner",
        "watch_nested.py:<lambda>",
        "watch_nested.py:<listcomp>",
    ];
    let (counts, out) = count_on(&py, Some("watch"), "watch_nested.py", &filters, &[]);
    assert_eq!(counts, expect, "{out}");
}

tests_of!(nested_on {
    nested_code_objects_on_pyenv_3_10: (Python::pyenv("3.10"), &[(10, 100), (17, 80), (21, 30)]);
    nested_code_objects_on_debian_3_11: (Python::debian(), &[(10, 100), (17, 80), (21, 30)]);
    nested_code_objects_on_pyenv_3_12_which_inlines_comprehensions:
        (Python::pyenv("3.12"), &[(10, 100), (17, 80)]);
});

#[test]
fn probes_lists_the_code_objects_a_filter_finds() {
    let (w, _lines) = workload(&Python::debian(), &[]);
    let pid = w.pid().to_string();
    let out = Pyprobe::new(&[
        "probes",
        "--pid",
        &pid,
        "--filter",
        "target",
        "--filter",
        "Shape.area",
    ])
    .run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--filter on watchpoints: 2 code objects found"),
        "{text}"
    );
    // 3.11: the watched unit is co_code_adaptive, 184 bytes into the code object.
    for (name, line) in [("target", 12), ("Shape.area", 20)] {
        let row = text
            .lines()
            .find(|l| l.contains(&format!("watch.py:{line} {name}: code object 0x")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
        let hex = |after: &str| {
            let at = row.find(after).unwrap() + after.len();
            let digits: String = row[at..]
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            u64::from_str_radix(&digits, 16).unwrap()
        };
        assert_eq!(hex("watched unit 0x") - hex("code object 0x"), 184, "{row}");
    }
}

#[test]
fn probes_shows_the_watch_source() {
    let row = "pycount --source watch --filter NAME (exact, up to 4)";
    let py = Python::pyenv("3.12");
    let w = Workload::script("parked_threads.py").on(&py).ready();
    let out = Pyprobe::new(&["probes", "--pid", &w.pid().to_string()]).run();
    let text = String::from_utf8_lossy(&out.stdout);
    let (line, works, how) = probes_row(&text, row);
    assert_eq!(works, "yes", "{line}");
    assert!(
        how.trim_start()
            .starts_with("hardware watchpoints on the functions' first bytecode"),
        "{line}"
    );
}
