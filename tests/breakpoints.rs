//! pycount --filter on hardware breakpoints (src/breakpoints/): exact counts on CPython 3.12 and
//! 3.14 with the perf trampoline, for functions that ran before attach, one first called after
//! it, a thread started after it and a name two functions share; and the shared probe where
//! breakpoints cannot serve, said in the banner.
mod common;

use std::time::Duration;

use common::{Python, finish_pyprobe, spawn_ready, start_pyprobe};

/// Traces tests/scripts/breakpoints.py by PID with pycount ARGS --json until it exits: the
/// report's (name, count) pairs sorted, and pyprobe's stderr.
fn count(py: &Python, args: &[&str]) -> (Vec<(String, u64)>, String) {
    let mut w = spawn_ready(&mut py.command(&py.script("breakpoints.py")));
    let pid = w.pid();
    let pid_text = pid.to_string();
    let mut all = vec!["count"];
    all.extend(args);
    all.extend(["--pid", &pid_text, "--json"]);
    let (p, rx) = start_pyprobe(&all);
    w.send_line("go");
    let wout = w.wait_output(Duration::from_secs(60));
    py.remove_perf_map(pid);
    assert!(
        wout.status.success(),
        "workload failed: {}",
        String::from_utf8_lossy(&wout.stderr)
    );
    let (stdout, stderr) = finish_pyprobe(p, rx);
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    let mut counts: Vec<(String, u64)> = report["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .map(|f| {
            (
                format!("{}:{}", f["name"].as_str().unwrap(), f["line"]),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect();
    counts.sort();
    (counts, stderr)
}

fn pairs(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = expected.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    v.sort();
    v
}

fn banner(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("Tracing"))
        .unwrap_or_else(|| panic!("no banner:\n{stderr}"))
}

fn exact_on(py: Python) {
    // Functions that ran before attach, a thread started after it, a generator's resumes.
    let (counts, stderr) = count(&py, &["--filter", "warm", "--filter", "counter"]);
    assert_eq!(
        counts,
        pairs(&[("warm:10", 3250), ("counter:36", 400)]),
        "{stderr}"
    );
    assert!(
        banner(&stderr).contains("hardware breakpoints on 2 functions"),
        "{stderr}"
    );
    // A name two functions share: each counted under its own row.
    let (counts, stderr) = count(&py, &["--filter", "run"]);
    assert_eq!(
        counts,
        pairs(&[("run:23", 700), ("run:28", 500)]),
        "{stderr}"
    );
    assert!(
        banner(&stderr).contains("hardware breakpoints on 2 functions"),
        "{stderr}"
    );
    // First called after attach: the shared probe counts it until its breakpoint is set.
    let (counts, stderr) = count(&py, &["--filter", "cold", "--filter", "warm"]);
    assert_eq!(
        counts,
        pairs(&[("cold:14", 1000), ("warm:10", 3250)]),
        "{stderr}"
    );
    let b = banner(&stderr);
    assert!(
        b.contains("hardware breakpoints on 1 function")
            && b.contains("the shared probe counts cold until its first call"),
        "{stderr}"
    );
    // Latency pairs a call's stub with the instruction after its call.
    let (counts, stderr) = count(&py, &["--filter", "warm", "--latency"]);
    assert_eq!(counts, pairs(&[("warm:10", 3250)]), "{stderr}");
    assert!(banner(&stderr).contains("~"), "{stderr}");
}

#[test]
fn exact_on_pyenv_3_12_with_x_perf() {
    exact_on(Python::pyenv("3.12").with_trampoline());
}

#[test]
fn exact_on_sid_3_14_with_the_trampoline() {
    exact_on(Python::sid("3.14").with_trampoline());
}

#[test]
fn the_shared_probe_where_breakpoints_cannot_serve() {
    let py = Python::pyenv("3.12").with_trampoline();
    // Five functions: more than the four debug registers.
    let (counts, stderr) = count(
        &py,
        &[
            "--filter", "warm", "--filter", "run", "--filter", "counter", "--filter", "spare",
        ],
    );
    assert_eq!(
        counts,
        pairs(&[
            ("warm:10", 3250),
            ("run:23", 700),
            ("run:28", 500),
            ("run:999", 1),
            ("counter:36", 400),
            ("spare:32", 10)
        ]),
        "{stderr}"
    );
    assert!(
        banner(&stderr)
            .contains("(the shared probe: 5 functions match, more than 4 breakpoints can watch)"),
        "{stderr}"
    );
    // A glob: any number of functions.
    let (counts, stderr) = count(&py, &["--filter", "war*"]);
    assert_eq!(counts, pairs(&[("warm:10", 3250)]), "{stderr}");
    assert!(
        banner(&stderr).contains("the shared probe: a --filter glob"),
        "{stderr}"
    );
}
