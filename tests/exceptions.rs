//! pyprobe exceptions against real CPython processes with real BPF: a workload of known raises
//! (tests/scripts/known_raises.py) counted exactly, by --pid and by -- COMMAND, on 3.8-3.15.
mod common;

use common::python::Python;
use common::*;
use serde_json::Value;

/// The workload's own rows: (type, function, frames, ended in, count), sorted.
fn own_rows(report: &Value) -> Vec<(String, String, u64, String, u64)> {
    let mut rows: Vec<_> = report["exceptions"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| {
            let f = r["file"].as_str().unwrap();
            f.ends_with("known_raises.py") || f == "<string>"
        })
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_string(),
                r["function"].as_str().unwrap().to_string(),
                r["frames"].as_u64().unwrap(),
                r["ended_in"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn expected(py_minor: u32) -> Vec<(String, String, u64, String, u64)> {
    // Thread.run is where the thread's target is called; 3.11+ name it qualified.
    let q = |m: &str, f: &str| {
        if py_minor >= 11 {
            format!("{m}.{f}")
        } else {
            f.to_string()
        }
    };
    let mut v = vec![
        (
            "KeyError".into(),
            "c_raised".into(),
            1,
            "c_raised".into(),
            40,
        ),
        ("LookupError".into(), "deep".into(), 3, "two_up".into(), 50),
        (
            "RuntimeError".into(),
            "boom".into(),
            3,
            q("Thread", "_bootstrap_inner"),
            1,
        ),
        (
            "ValueError".into(),
            "same_frame".into(),
            1,
            "same_frame".into(),
            100,
        ),
    ];
    if py_minor >= 11 {
        v.push((
            "ExceptionGroup".into(),
            "<module>".into(),
            1,
            "<module>".into(),
            10,
        ));
    }
    v.sort();
    v
}

/// Attaches to the running workload, releases it, and reads the report while it keeps running.
fn by_pid(py: &Python, minor: u32) {
    let mut w = Workload::script("known_raises.py").on(py).ready();
    let pid = w.pid().to_string();
    let p = Pyprobe::new(&["exceptions", "--pid", &pid, "-d", "3", "--json"]).start();
    w.send_line("go");
    let (stdout, stderr) = p.finish();
    assert!(w.alive(), "the workload keeps running");
    let report = last_json(&stdout);
    assert_eq!(own_rows(&report), expected(minor), "{stderr}");
}

fn by_command(py: &Python, minor: u32) {
    let Ran { stdout, stderr, ok } = Pyprobe::new(&["exceptions", "-d", "4", "--json"])
        .spawn(Workload::script("known_raises.py").on(py))
        .run_with_go();
    assert!(ok, "{stderr}");
    assert_eq!(own_rows(&last_json(&stdout)), expected(minor), "{stderr}");
}

#[test]
fn debian_311_by_pid() {
    by_pid(&Python::debian(), 11);
}

#[test]
fn debian_311_by_command() {
    by_command(&Python::debian(), 11);
}

#[test]
fn pyenv_38_310_312_313_by_pid() {
    for (v, minor) in [("3.8", 8), ("3.10", 10), ("3.12", 12), ("3.13", 13)] {
        by_pid(&Python::pyenv(v), minor);
    }
}

#[test]
fn sid_313_314_315_by_pid() {
    for (v, minor) in [("3.13", 13), ("3.14", 14), ("3.15", 15)] {
        by_pid(&Python::sid(v), minor);
    }
}

#[test]
fn pyenv_312_sid_314_by_command() {
    by_command(&Python::pyenv("3.12"), 12);
    by_command(&Python::sid("3.14"), 14);
}

#[test]
fn streaming_prints_one_line_per_exception() {
    let Ran { stdout, stderr, ok } = Pyprobe::new(&[
        "exceptions",
        "-d",
        "4",
        "--json",
        "--stream",
        "--filter",
        "LookupError",
    ])
    .spawn(Workload::script("known_raises.py").on(&Python::debian()))
    .run_with_go();
    assert!(ok, "{stderr}");
    let lines = json_lines(&stdout);
    let streamed = lines.iter().filter(|l| l.get("tid").is_some()).count();
    // The KeyErrors that follow end the last LookupError: all 50 are streamed.
    assert_eq!(streamed, 50, "{stdout}");
    assert_eq!(lines.last().unwrap()["total"], 50);
}

#[test]
fn bad_input_is_one_line() {
    assert_clean_failure(&["exceptions", "--pid", "999999999"], "999999999");
}
