//! pygc against real CPython processes with real BPF: exact collections per generation and
//! thread, collected totals, pause lengths against the workload's own perf_counter timings,
//! --min-pause, interpreter shutdown, CPython 3.13-3.15, and the error paths.
mod common;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Workloads run one at a time: on two cores, parallel tests would stretch the workloads' own
/// timings with preemption (outside the probes' window) and blur the comparisons.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every JSON document in pygc's output: its streamed pauses and its last report.
fn pauses_and_report(stdout: &str) -> (Vec<Value>, Value) {
    // A spawned workload shares pygc's stdout: a line cut into by another must not pass unseen.
    for l in stdout.lines() {
        assert!(
            l.starts_with('{') || !l.contains('{'),
            "a line written in pieces: {l}"
        );
    }
    let docs: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let pauses = docs
        .iter()
        .filter(|d| d["type"] == "pause")
        .cloned()
        .collect();
    let report = docs
        .iter()
        .rev()
        .find(|d| d["type"] == "report")
        .unwrap_or_else(|| panic!("no report in:\n{stdout}"))
        .clone();
    (pauses, report)
}

fn generation(report: &Value, g: u64) -> &Value {
    let gen_stats = &report["generations"][g as usize];
    assert_eq!(gen_stats["generation"], g, "{report}");
    gen_stats
}

/// Traces one window of a stdin-gated workload (`script_argv`: the script and its arguments)
/// on `py` by PID: attach, "go", read the workload's own results line, stop pygc with Ctrl-C
/// (SIGINT), and only then let the workload exit, so that interpreter shutdown's collections
/// stay out of the window. Returns (pygc stdout, results).
fn trace_window(py: &Python, script_argv: &[&str], pygc_args: &[&str]) -> (String, Value) {
    trace_window_as(py, script_argv, pygc_args, Reader::Reads)
}

/// Whether pyprobe reads its ring buffer while the workload runs.
#[derive(PartialEq)]
enum Reader {
    Reads,
    /// Stopped (SIGSTOP) from attach until the workload is done: nothing drains the buffer.
    Stopped,
}

fn trace_window_as(
    py: &Python,
    script_argv: &[&str],
    pygc_args: &[&str],
    reader: Reader,
) -> (String, Value) {
    let _serial = serial();
    let (mut w, lines) = Workload::script(script_argv[0])
        .on(py)
        .args(&script_argv[1..])
        .ready_lines();

    let pid = w.pid().to_string();
    let mut args = vec!["gc", "--pid", &pid, "--json"];
    args.extend(pygc_args);
    let p = Pyprobe::new(&args).start();
    if reader == Reader::Stopped {
        // SAFETY: signalling the pyprobe child this test started.
        unsafe { libc::kill(p.pid(), libc::SIGSTOP) };
    }
    w.send_line("go");
    let own = lines.recv().expect("the workload's own results");
    let own: Value = serde_json::from_str(&own).expect("workload JSON");
    if reader == Reader::Stopped {
        // SAFETY: as above.
        unsafe { libc::kill(p.pid(), libc::SIGCONT) };
    }
    // SAFETY: signalling the pyprobe child this test started.
    unsafe { libc::kill(p.pid(), libc::SIGINT) };
    let (out, err) = p.finish();
    assert!(
        out.contains("\"type\":\"report\""),
        "no report on Ctrl-C:\n{out}\n{err}"
    );
    w.release("done", Duration::from_secs(30));
    (out, own)
}

/// (generation, tid, collected) of every collection, sorted: the workload's own log.
fn own_collections(own: &Value) -> Vec<(u64, u64, i64)> {
    streamed(own["collections"].as_array().unwrap())
}

/// (generation, tid, collected) of every pause pyprobe streamed (or collection logged), sorted.
fn streamed(pauses: &[Value]) -> Vec<(u64, u64, i64)> {
    let mut v: Vec<(u64, u64, i64)> = pauses
        .iter()
        .map(|p| {
            (
                p["generation"].as_u64().unwrap(),
                p["tid"].as_u64().unwrap(),
                p["collected"].as_i64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// gc_known.py's collections, counted exactly per generation, with the collected totals
/// gc.collect() returned, and every pause streamed (--min-pause 0) under the thread that
/// collected: 7 + 4 x 5 generation-2 collections from five threads, 2 of generation 1, 3 of 0.
fn assert_known_window(py: Python) {
    let (out, own) = trace_window(&py, &["gc_known.py"], &["--min-pause", "0"]);
    let (pauses, report) = pauses_and_report(&out);
    let collections = own_collections(&own);
    assert_eq!(collections.len(), 32, "the workload's own log: {own}");
    for (g, want) in [(0u64, 3u64), (1, 2), (2, 27)] {
        let mine: Vec<_> = collections.iter().filter(|c| c.0 == g).collect();
        assert_eq!(
            mine.len() as u64,
            want,
            "workload made {want} of generation {g}"
        );
        let stats = generation(&report, g);
        assert_eq!(stats["count"], want, "generation {g}: {report}");
        let collected: i64 = mine.iter().map(|c| c.2).sum();
        assert_eq!(
            stats["collected"].as_i64(),
            Some(collected),
            "generation {g} collected: {report}"
        );
        let hist: u64 = stats["histogram_us"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum();
        assert_eq!(hist, want, "generation {g} histogram: {stats}");
    }
    // Five threads collected; each pause is filed under the thread that made it.
    let tids: std::collections::BTreeSet<u64> = collections.iter().map(|c| c.1).collect();
    assert_eq!(tids.len(), 5, "{collections:?}");
    assert_eq!(streamed(&pauses), collections);
    let pid = own["pid"].as_u64().unwrap();
    assert!(pauses.iter().all(|p| p["pid"] == pid), "{pauses:?}");
    assert_eq!(report["collections"], 32);
    assert_eq!(report["lost"]["gc_unpaired"], 0);
    assert_eq!(report["lost"]["events_lost"], 0);
    assert_eq!(report["other_generation"], 0);
}

tests_of!(assert_known_window {
    counts_each_collection_exactly_per_generation_and_thread: (Python::debian());
    // Debian sid's interpreters, in the chroot scripts/testbeds builds (run by scripts/test).
    counts_exactly_on_cpython_3_13_without_function_probes: (Python::sid("3.13"));
    counts_exactly_on_cpython_3_14: (Python::sid("3.14"));
    counts_exactly_on_cpython_3_15: (Python::sid("3.15"));
});

/// The workload's own pause timings, in order: (kind, ns, collected).
fn own_pauses(own: &Value) -> Vec<(String, u64, i64)> {
    own["pauses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let collected = p["collected"].as_i64().unwrap();
            (str_at(p, "kind"), p["ns"].as_u64().unwrap(), collected)
        })
        .collect()
}

#[test]
fn pause_lengths_lie_within_the_workloads_own_timing() {
    let (out, own) = trace_window(&Python::debian(), &["gc_pauses.py"], &[]);
    let (pauses, report) = pauses_and_report(&out);
    assert!(pauses.is_empty(), "no --min-pause, no stream: {pauses:?}");
    let mine = own_pauses(&own);
    let g2 = generation(&report, 2);
    assert_eq!(g2["count"], mine.len() as u64, "{report}");
    assert_eq!(
        g2["collected"].as_i64(),
        Some(mine.iter().map(|p| p.2).sum::<i64>())
    );
    let own_max = mine.iter().map(|p| p.1).max().unwrap();
    assert!(
        own_max >= 10_000_000,
        "a big collection takes tens of ms: {mine:?}"
    );
    // The probes fire inside the interval the workload times: never longer, and the traps
    // and the gc.collect() call around them are far from half of tens of milliseconds.
    let max = g2["max_ns"].as_u64().unwrap();
    assert!(
        max <= own_max && max >= own_max / 2,
        "pygc max {max} vs own {own_max}"
    );
    let own_total: u64 = mine.iter().map(|p| p.1).sum();
    let total = g2["total_ns"].as_u64().unwrap();
    assert!(
        total <= own_total && total >= own_total / 2,
        "pygc total {total} vs own {own_total}"
    );
    let p99 = g2["p99_ns"].as_u64().unwrap();
    assert!(p99 <= max && p99 >= max / 2, "p99 {p99} vs max {max}");
    let share = report["gc_share"].as_f64().unwrap();
    let elapsed = report["elapsed_ns"].as_u64().unwrap() as f64;
    assert!(
        (share - total as f64 / elapsed).abs() < 1e-9 && share > 0.0 && share < 1.0,
        "{report}"
    );
}

/// Whether a printed pause can be this collection of the workload: the same objects freed,
/// and a length within the workload's own timing of it (never longer, at least half).
fn is_pause_of(p: &Value, own_ns: u64, collected: i64) -> bool {
    let d = p["duration_ns"].as_u64().unwrap();
    p["collected"].as_i64() == Some(collected) && d <= own_ns && d >= own_ns / 2
}

#[test]
fn min_pause_prints_exactly_the_pauses_above_the_threshold() {
    const THRESHOLD_NS: u64 = 10_000_000;
    // The workload grows its heap until its own clock says a big collection took twice the
    // threshold, whatever this machine's speed; it starts from a heap small enough that it
    // has to on any machine.
    let long = (2 * THRESHOLD_NS).to_string();
    let (out, own) = trace_window(
        &Python::debian(),
        &["gc_pauses.py", &long, "10000"],
        &["--min-pause", "10000"],
    );
    let (pauses, report) = pauses_and_report(&out);
    let mine = own_pauses(&own);
    let tid = own["tid"].as_u64().unwrap();
    let big: Vec<u64> = mine.iter().filter(|p| p.0 == "big").map(|p| p.1).collect();
    assert!(
        big.len() == 3 && big.iter().all(|&ns| ns >= 2 * THRESHOLD_NS),
        "three big collections of twice the threshold: {mine:?}"
    );
    // A pause the probes measure lies within the workload's own timing and is at least half
    // of it: below the threshold by the workload's clock, it cannot be printed; at twice the
    // threshold or more, it must be. Between the two, either is right.
    let definite = mine.iter().filter(|p| p.1 >= 2 * THRESHOLD_NS).count();
    let possible = mine.iter().filter(|p| p.1 >= THRESHOLD_NS).count();
    assert!(
        (definite..=possible).contains(&pauses.len()),
        "{} printed; own timings {mine:?}; printed {pauses:?}",
        pauses.len()
    );
    // In order, each printed pause is one of the workload's collections at or above the
    // threshold, and every one at twice the threshold is printed.
    let mut printed = pauses.iter().peekable();
    for (kind, ns, collected) in &mine {
        let next_fits = printed
            .peek()
            .is_some_and(|p| is_pause_of(p, *ns, *collected));
        if *ns >= 2 * THRESHOLD_NS {
            assert!(next_fits, "{kind} pause of {ns} ns not printed: {pauses:?}");
        }
        if next_fits && *ns >= THRESHOLD_NS {
            let p = printed.next().unwrap();
            assert!(p["duration_ns"].as_u64().unwrap() >= THRESHOLD_NS, "{p}");
            assert_eq!(p["generation"], 2);
            assert_eq!(p["tid"], tid);
            assert_eq!(p["pid"], tid, "the main thread's id is the process id");
        }
    }
    assert!(printed.next().is_none(), "extra pauses printed: {pauses:?}");
    // The histograms still hold every pause, printed or not.
    assert_eq!(generation(&report, 2)["count"], mine.len() as u64);
}

#[test]
fn pauses_the_buffer_had_no_room_for_are_counted_not_lost_silently() {
    // pygc is stopped while the workload collects: nothing drains the smallest pause buffer
    // (4 KiB, about 70 pauses), which overflows.
    let (out, own) = trace_window_as(
        &Python::debian(),
        &["gc_burst.py"],
        &["--min-pause", "0", "--buffer-size", "4K"],
        Reader::Stopped,
    );
    let (pauses, report) = pauses_and_report(&out);
    let made = own["collections"].as_u64().unwrap();
    assert_eq!(generation(&report, 0)["count"].as_u64(), Some(made));
    let lost = report["lost"]["events_lost"].as_u64().unwrap();
    assert!(lost > 0, "{} pauses printed, none lost", pauses.len());
    assert_eq!(pauses.len() as u64 + lost, made, "printed + lost = made");
}

#[test]
fn a_collection_under_way_at_attach_is_reported_unpaired() {
    let _serial = serial();
    let (mut w, lines) = Workload::script("gc_attach_mid.py").lines();
    // Its finalizer says so from inside the collection, and waits there for us.
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(60)).ok().as_deref(),
        Some("collecting")
    );
    let pid = w.pid().to_string();
    let p = Pyprobe::new(&["gc", "--pid", &pid]).start();
    w.send_line("finish the collection");
    let own: Value = serde_json::from_str(&lines.recv().expect("results")).unwrap();
    unsafe { libc::kill(p.pid(), libc::SIGINT) };
    let (out, err) = p.finish();
    w.send_line("exit");
    assert_eq!(own["after"].as_array().unwrap().len(), 2, "{own}");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("2 "))
        .unwrap_or_else(|| panic!("{out}\n{err}"));
    assert_eq!(
        row.split_whitespace().nth(1),
        Some("2"),
        "only the two collections seen whole are timed: {out}"
    );
    assert!(
        out.contains("WARNING: 1 GC pauses not timed: their start was not seen"),
        "{out}"
    );
}

#[test]
fn min_pause_table_has_one_row_per_pause_with_its_columns() {
    let _serial = serial();
    let (mut w, lines) = Workload::script("gc_pauses.py").ready_lines();
    let pid = w.pid().to_string();
    let p = Pyprobe::new(&["gc", "--pid", &pid, "--min-pause", "0"]).start();
    w.send_line("go");
    let own: Value = serde_json::from_str(&lines.recv().unwrap()).unwrap();
    unsafe { libc::kill(p.pid(), libc::SIGTERM) };
    let (out, err) = p.finish();
    w.send_line("done");
    let rows: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("TIME(UTC)"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    let mine = own_pauses(&own);
    assert_eq!(rows.len(), mine.len(), "{out}\n{err}");
    for (row, (_, _, collected)) in rows.iter().zip(&mine) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "{row}");
        assert_eq!(cols[1], pid);
        assert_eq!(cols[3], "2");
        assert_eq!(cols[5], collected.to_string());
    }
    assert!(out.contains("generation 2:\n"), "{out}");
    assert!(out.contains(" -> "), "a histogram: {out}");
    assert!(
        out.contains(&format!("GC pauses: {} collections", mine.len())),
        "{out}"
    );
}

#[test]
fn a_spawned_command_is_traced_to_its_exit_and_shutdown_is_accounted_for() {
    let _serial = serial();
    let mut g = Pyprobe::new(&["gc", "--json", "--min-pause", "0"])
        .spawn(Workload::script("gc_known.py"))
        .launch();
    g.send_line("go");
    g.send_line("done");
    let out = g.wait_output(Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let own: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|d| d.get("collections").is_some_and(Value::is_array))
        .expect("the workload's results line");
    let (pauses, report) = pauses_and_report(&stdout);
    let start = own["start_unix_ns"].as_u64().unwrap();
    let end = own["end_unix_ns"].as_u64().unwrap();
    let at = |p: &Value| p["unix_ns"].as_u64().unwrap();
    let startup: Vec<&Value> = pauses.iter().filter(|p| at(p) < start).collect();
    let during: Vec<Value> = pauses
        .iter()
        .filter(|p| (start..=end).contains(&at(p)))
        .cloned()
        .collect();
    let shutdown: Vec<&Value> = pauses.iter().filter(|p| at(p) > end).collect();
    // Traced from the first bytecode: automatic collections while the interpreter starts and
    // imports (before gc.disable()), the workload's own collections exactly, then interpreter
    // shutdown's full collections, made by the main thread after the workload's last line.
    assert_eq!(streamed(&during), own_collections(&own));
    assert!(!shutdown.is_empty(), "shutdown collects at least once");
    let pid = own["pid"].as_u64().unwrap();
    assert!(
        shutdown
            .iter()
            .all(|p| p["generation"] == 2 && p["tid"] == pid),
        "{shutdown:?}"
    );
    assert!(startup.iter().all(|p| p["tid"] == pid), "{startup:?}");
    for (g, own_count) in [(0u64, 3usize), (1, 2), (2, 27)] {
        let outside = startup
            .iter()
            .chain(&shutdown)
            .filter(|p| p["generation"] == g)
            .count();
        assert_eq!(
            generation(&report, g)["count"].as_u64(),
            Some((own_count + outside) as u64),
            "generation {g}: {report}\nstartup {startup:?}\nshutdown {shutdown:?}\nstdout:\n{stdout}"
        );
    }
    assert_eq!(report["collections"].as_u64(), Some(pauses.len() as u64));
    assert_eq!(report["lost"]["events_lost"], 0);
}

#[test]
fn interval_reports_cover_their_own_window() {
    // Paced: 0.1 s after each of the main thread's 12 collections, so windows of 0.25 s split them.
    let (out, own) = trace_window(
        &Python::debian(),
        &["gc_known.py", "paced"],
        &["--interval", "0.25"],
    );
    let reports: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let busy = reports
        .iter()
        .filter(|r| r["collections"].as_u64() > Some(0))
        .count();
    assert!(busy >= 3, "collections spread over windows: {out}");
    let mut per_gen: BTreeMap<u64, u64> = BTreeMap::new();
    for r in &reports {
        assert_eq!(r["type"], "report");
        assert!(r["elapsed_ns"].as_u64().unwrap() < 1_000_000_000, "{r}");
        for g in 0..3 {
            *per_gen.entry(g).or_default() += generation(r, g)["count"].as_u64().unwrap();
        }
    }
    let mut want: BTreeMap<u64, u64> = BTreeMap::new();
    for c in own_collections(&own) {
        *want.entry(c.0).or_default() += 1;
    }
    assert_eq!(per_gen, want, "windows add up to the whole: {out}");
}

#[test]
fn pygc_name_runs_the_gc_command() {
    assert_help_under_name("pygc", &["--min-pause", "EXAMPLES"]);
}

#[test]
fn unknown_pid_is_refused() {
    assert_clean_failure(&["gc", "--pid", "4194304"], "no process with PID 4194304");
}

#[test]
fn a_process_that_is_not_python_is_refused() {
    assert_refuses_a_process_that_is_not_python("gc");
}

#[test]
fn a_python_without_probes_is_refused() {
    assert_refuses_a_python_without_probes("gc");
    let py = pyenv_python().to_string_lossy().into_owned();
    assert_clean_failure(
        &["gc", "--", &py, "-c", "pass"],
        "built without USDT probes",
    );
}

#[test]
fn no_target_is_a_usage_error() {
    assert_clean_failures(&[
        (&["gc"], "no target"),
        (
            &["gc", "--", "/nonexistent/python3", "x.py"],
            "cannot start",
        ),
    ]);
}

#[test]
fn bad_option_values_are_refused_naming_the_flag() {
    for (args, flag) in [
        (
            &["gc", "--pid", "1", "--min-pause", "-5"][..],
            "--min-pause",
        ),
        (&["gc", "--pid", "1", "--min-pause", "10ms"], "--min-pause"),
        (&["gc", "--pid", "1", "--interval", "0"], "--interval"),
        (
            &["gc", "--pid", "1", "--buffer-size", "100"],
            "--buffer-size",
        ),
    ] {
        let out = Pyprobe::new(args).run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(!err.contains("panicked"), "{err}");
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.starts_with("pyprobe: error:") && first.contains(flag),
            "{args:?}: {err}"
        );
    }
}
