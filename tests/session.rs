//! The session lifecycle on a process that keeps running after pyprobe ends: whatever is in
//! flight when probes go live or go away shows as in flight, never as corrupt nesting.
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SERVICE: &str = "steady_service.py";
/// Two threads, each with at most five calls open below a loop entered before attach.
const THREADS: usize = 2;
const DEPTH: usize = 5;
/// Calls open at one moment: in flight at attach, or at detach.
const IN_FLIGHT: usize = THREADS * DEPTH;

fn service(imports: bool) -> Guard {
    let w = Workload::script(SERVICE);
    if imports {
        w.env("STEADY_IMPORTS", "1")
    } else {
        w
    }
    .ready()
}

/// Runs pyprobe for one second against a service that outlives it; the service must still run.
fn one_second(args: &[&str], imports: bool) -> (String, String) {
    let mut svc = service(imports);
    let pid = svc.pid().to_string();
    let mut all = args.to_vec();
    all.extend(["--pid", &pid, "--duration", "1"]);
    let p = Pyprobe::new(&all).start();
    let (out, err) = p.finish();
    assert!(svc.alive(), "the service died: {err}");
    (out, err)
}

#[test]
fn pyflow_on_a_running_service_nests_no_deeper_than_the_program() {
    let (out, err) = one_second(&["flow", "--filter", "steady_service.py:level*"], false);
    assert!(!err.contains("nested deeper"), "{err}");
    let (mut calls, mut returns) = (0usize, 0usize);
    for line in out.lines().filter(|l| l.contains("level")) {
        let arrow = line.find("->").or_else(|| line.find("<-")).unwrap();
        // The rows are `TIME PID TID  ` then two spaces per level of nesting.
        let indent = line[..arrow].len() - line[..arrow].trim_end().len() - 2;
        assert!(indent / 2 < DEPTH, "nested {} deep: {line}", indent / 2 + 1);
        if line[arrow..].starts_with("->") {
            calls += 1;
        } else {
            returns += 1;
        }
    }
    assert!(calls > 1000, "too few calls to judge: {calls}\n{err}");
    assert!(
        calls.abs_diff(returns) <= 2 * IN_FLIGHT,
        "{calls} calls, {returns} returns\n{err}"
    );
}

#[test]
fn pyflow_folded_stacks_on_a_running_service_are_no_deeper_than_the_program() {
    let (out, err) = one_second(
        &[
            "flow",
            "--filter",
            "steady_service.py:level*",
            "--format",
            "folded",
            "--weight",
            "calls",
        ],
        false,
    );
    assert!(!out.is_empty(), "{err}");
    for line in out.lines() {
        let stack = line.rsplit_once(' ').unwrap().0;
        let frames = stack.split(';').count();
        assert!(frames <= DEPTH, "{frames} frames: {line}");
    }
}

#[test]
fn pycount_latency_on_a_running_service_pairs_all_but_the_calls_in_flight() {
    let (out, err) = one_second(
        &["count", "--latency", "--json", "--filter", "level*"],
        false,
    );
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {err}"));
    let lost = &report["lost"];
    let unpaired = lost["unpaired_returns"].as_u64().unwrap() as usize;
    assert!(unpaired <= IN_FLIGHT, "{unpaired} unpaired returns: {lost}");
    assert_eq!(lost["too_deep"], 0, "{lost}");
    let functions = report["functions"].as_array().unwrap();
    assert_eq!(functions.len(), DEPTH, "{report}");
    for f in functions {
        // Each call is timed unless it was in flight at attach.
        let (count, timed) = (f["count"].as_u64().unwrap(), f["timed"].as_u64().unwrap());
        assert!(count - timed <= THREADS as u64, "{f}");
    }
}

#[test]
fn imports_on_a_running_service_pair_all_but_the_loads_in_flight() {
    let (out, err) = one_second(&["imports", "--json"], true);
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {err}"));
    let lost = &report["lost"];
    // Three nested loads per round, in two threads.
    let in_flight = (THREADS * 3) as u64;
    assert!(
        lost["unpaired_dones"].as_u64().unwrap() <= in_flight,
        "{lost}"
    );
    assert!(lost["in_progress"].as_u64().unwrap() <= in_flight, "{lost}");
    assert_eq!(lost["too_deep"], 0, "{lost}");
    assert!(report["count"].as_u64().unwrap() > 30, "{report}");
    for root in report["imports"].as_array().unwrap() {
        assert!(depth(root) <= 3, "{root}");
    }
}

fn depth(node: &Value) -> usize {
    1 + node["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(depth)
        .max()
        .unwrap_or(0)
}

#[test]
fn the_service_runs_on_unharmed_after_every_tool() {
    let mut svc = service(false);
    let pid = svc.pid().to_string();
    for tool in [&["flow"][..], &["count", "--latency"], &["gc"], &["lines"]] {
        let mut args = tool.to_vec();
        args.extend(["--pid", &pid, "--duration", "0.3"]);
        let out = Pyprobe::new(&args).run();
        assert!(out.status.success(), "{tool:?}: {out:?}");
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(svc.alive());
}

/// `pyprobe TOOL --pid P ARGS` on forever.py (nothing but calls) to its end: the target, still
/// running, how long the session took, and what pyprobe said.
fn on_forever(tool: &str, args: &[&str]) -> (Guard, Duration, String) {
    let busy = Workload::script("forever.py").ready();
    let pid = busy.pid().to_string();
    let mut all = vec![tool, "--pid", &pid];
    all.extend(args);
    let started = Instant::now();
    let (_, err) = Pyprobe::new(&all).start().finish();
    (busy, started.elapsed(), err)
}

#[test]
fn max_overhead_stops_a_costly_session_and_leaves_the_target_running() {
    // forever.py does nothing but call: pyflow slows it far past 20%.
    let (mut busy, took, err) = on_forever(
        "flow",
        &[
            "--duration",
            "60",
            "--max-overhead",
            "20",
            "--output",
            "/dev/null",
        ],
    );
    // The budget is checked each second: well before the 60 s asked for.
    assert!(took < Duration::from_secs(15), "{err}");
    assert!(err.contains("more than --max-overhead 20%"), "{err}");
    assert!(err.contains("slower"), "no cost estimate told: {err}");
    assert!(busy.alive(), "{err}");
    assert!(
        semaphores(busy.pid()).iter().all(|(_, v)| *v == 0),
        "{:?}",
        semaphores(busy.pid())
    );
}

#[test]
fn max_overhead_lets_a_cheap_session_run_its_course() {
    // The same busy target under pygc: its probes fire only on collections, which forever.py
    // never triggers; a 1% budget holds for the whole 2 s.
    let (mut busy, took, err) = on_forever("gc", &["--duration", "2", "--max-overhead", "1"]);
    assert!(took >= Duration::from_secs(2), "{err}");
    assert!(!err.contains("--max-overhead"), "{err}");
    assert!(busy.alive());
}

/// pyprobe ended well, saying each of `says` on stderr, and left `busy` running with its
/// probes' semaphores back at 0.
fn assert_ended_well_leaving_it_clean(out: &std::process::Output, busy: &mut Guard, says: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for s in says {
        assert!(err.contains(s), "{err}");
    }
    assert!(busy.alive());
    assert!(semaphores(busy.pid()).iter().all(|(_, v)| *v == 0));
}

#[test]
fn a_reader_that_never_reads_does_not_hold_the_session_past_its_duration() {
    // pyflow on a busy target writes far more than a pipe holds; nobody reads it.
    let mut busy = Workload::script("forever.py").ready();
    let pid = busy.pid().to_string();
    let mut p = Pyprobe::new(&["flow", "--pid", &pid, "--duration", "2"]).launch();
    // Hold the pipe, unread, until pyprobe has ended (generous: its duration plus the
    // grace it gives a slow reader, on a loaded machine).
    let _unread = p.child().stdout.take();
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!p.alive(), "pyprobe still blocked on its output");
    // The accounting still reaches stderr: events and the output that could not be written.
    assert_ended_well_leaving_it_clean(
        &p.wait_output(Duration::from_secs(1)),
        &mut busy,
        &["events shown;", "not written to standard output"],
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_session_in_order() {
    // `pyflow --pid P | head -3`: no --duration; the reader's exit ends it.
    let mut busy = Workload::script("forever.py").ready();
    let pid = busy.pid().to_string();
    let mut p = Pyprobe::new(&["flow", "--pid", &pid]).launch();
    let stdout = p.child().stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    for _ in 0..3 {
        lines.next().expect("a line").unwrap();
    }
    drop(lines);
    assert_ended_well_leaving_it_clean(
        &p.wait_output(Duration::from_secs(30)),
        &mut busy,
        &["its reader closed it", "events shown;"],
    );
}
