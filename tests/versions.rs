//! Function tracing on the Pythons people run, probes or not: known_calls.py counted exactly,
//! by --pid and by -- COMMAND, through whichever source the target allows (the eval-frame
//! uprobe on 3.6-3.10, with CPython's perf trampoline on 3.12-3.14; USDT on 3.11 and 3.15,
//! tested in tests/count.rs), and the refusals where no exact way exists.
mod common;

use common::flow_calls::{call, flows, slow_path, top};
use common::known_calls::{assert_known_counts, assert_known_counts_but};
use common::*;

const FILTER: &str = "known_calls.py:*";

/// known_calls.py counted exactly when pyprobe starts it, and when it attaches to it running
/// (started with the perf trampoline on where the version needs it).
fn counts_exactly(py: Python, trampoline_for_pid: bool) {
    let (out, err) = Pyprobe::new(&["count", "--json", "--filter", FILTER])
        .spawn(Workload::script("known_calls.py").on(&py))
        .run_with_go_ok();
    // Shown only if an assertion below fails.
    eprintln!("pyprobe's stderr:\n{err}\npyprobe's report:\n{out}");
    assert_known_counts(&last_json(&out));
    // The perf map of the trampoline pyprobe switched on goes with the command.
    let map = py.perf_map(banner_pid(&err));
    assert!(!map.exists(), "{} left behind", map.display());

    let py = if trampoline_for_pid {
        py.with_trampoline()
    } else {
        py
    };
    let report = Pyprobe::new(&["count", "--filter", FILTER, "--json"])
        .trace(Workload::script("known_calls.py").on(&py))
        .report();
    // Calls are counted at their entry: main() was running when pyprobe attached.
    assert_known_counts_but(&report, &["main"]);
}

tests_of!(counts_exactly {
    pyenv_3_6_without_probes_counts_exactly: (Python::pyenv("3.6"), false);
    pyenv_3_8_without_probes_counts_exactly: (Python::pyenv("3.8"), false);
    pyenv_3_10_without_probes_counts_exactly: (Python::pyenv("3.10"), false);
    pyenv_3_12_with_the_trampoline_counts_exactly: (Python::pyenv("3.12"), true);
    pyenv_3_13_with_the_trampoline_counts_exactly: (Python::pyenv("3.13"), true);
    sid_3_13_with_the_trampoline_counts_exactly: (Python::sid("3.13"), true);
    sid_3_14_with_the_trampoline_counts_exactly: (Python::sid("3.14"), true);
    bullseye_3_9_with_probes_counts_exactly: (Python::bullseye(), false);
    trixie_3_13_with_the_trampoline_counts_exactly: (Python::trixie(), true);
});

#[test]
fn a_3_11_without_probes_is_refused_with_the_reason() {
    assert_count_refuses_known_calls_on(&Python::pyenv("3.11"), "no exact way to trace its calls");
}

#[test]
fn a_3_12_without_the_trampoline_is_refused_with_the_remedy() {
    assert_count_refuses_known_calls_on(
        &Python::pyenv("3.12"),
        "restart it with PYTHONPERFSUPPORT=1",
    );
}

/// sleepers.py's calls timed by pyprobe as the workload timed them itself.
fn latency_matches(py: Python) {
    let (stdout, stderr) = Pyprobe::new(&["count", "--latency", "--json", "--filter", "sleep_*"])
        .spawn(Workload::script("sleepers.py").on(&py))
        .run_with_go_ok();
    assert_sleepers_latency(&last_json(&stdout), &stderr);
}

tests_of!(latency_matches {
    latency_on_3_10_matches_the_workloads_own_timing: (Python::pyenv("3.10"));
    latency_on_3_12_matches_the_workloads_own_timing: (Python::pyenv("3.12"));
    latency_on_3_14_matches_the_workloads_own_timing: (Python::sid("3.14"));
});

/// flow_calls.py's exact flow per thread, from its first bytecode.
fn flow_is_exact(py: Python) {
    let (stdout, stderr) = Pyprobe::new(&["flow", "--json", "--filter", "flow_calls.py:*"])
        .spawn(Workload::script("flow_calls.py").on(&py))
        .run_with_go_ok();
    let mut events = json_lines(&stdout);
    let summary = events.pop().unwrap();
    assert_eq!(summary["event"], "summary", "{summary}");
    let f = flows(&events);
    assert_eq!(f.len(), 2, "main thread and one worker: {f:?}");
    let main = call(1, "main", [top(2, None), slow_path(2)].concat());
    assert_eq!(f[0].1, call(0, "<module>", main), "{stderr}");
    assert_eq!(f[1].1, call(0, "worker", top(1, None)));
    for k in [
        "events_lost",
        "unpaired_returns",
        "too_deep",
        "exits_unseen",
        "code_read_errors",
    ] {
        assert_eq!(summary["lost"][k], 0, "{k}: {summary}");
    }
}

tests_of!(flow_is_exact {
    flow_on_3_10_is_exact: (Python::pyenv("3.10"));
    flow_on_3_12_is_exact: (Python::pyenv("3.12"));
    flow_on_3_14_is_exact: (Python::sid("3.14"));
});

#[test]
fn activating_the_trampoline_of_a_live_3_14_counts_exactly_from_then_on() {
    let py = Python::sid("3.14");
    let mut w = Workload::script("known_calls.py").on(&py).ready();
    let w_pid = w.pid();
    let pid = w_pid.to_string();
    let p = Pyprobe::new(&[
        "count",
        "--pid",
        &pid,
        "--activate-trampoline",
        "--json",
        "--filter",
        FILTER,
    ])
    .start();
    w.send_line("go");
    let wout = w.wait_output(std::time::Duration::from_secs(60));
    assert!(
        wout.status.success(),
        "{:?} {}",
        wout.status,
        String::from_utf8_lossy(&wout.stderr)
    );
    let (stdout, stderr) = p.finish();
    assert!(
        stderr.contains("switching on CPython's perf trampoline"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_known_counts_but(&report, &["main"]);
    let _ = std::fs::remove_file(py.perf_map(w_pid));
}

#[test]
fn activating_the_trampoline_is_refused_where_remote_debugging_is_off() {
    let py = Python::sid("3.14");
    let script = py.script("known_calls.py");
    let cmd = py.command(&script);
    // `-X disable-remote-debug` goes before the script.
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut cmd = std::process::Command::new(cmd.get_program());
    let split = args.iter().position(|a| *a == script).unwrap();
    cmd.args(&args[..split])
        .args(["-X", "disable-remote-debug"])
        .args(&args[split..]);
    let mut g = Workload::command(cmd).ready();
    let pid = g.pid().to_string();
    assert_clean_failure(
        &["count", "--pid", &pid, "--activate-trampoline"],
        "remote debugging",
    );
    assert!(g.alive(), "the process keeps running");
}
