//! pyflow against real CPython 3.11 processes with real BPF: the exact flow per thread, exact
//! counts, loss accounting with a tiny ring buffer, the in-kernel filters, and the pictures.
mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::flow_calls::*;
use common::*;
use serde_json::Value;

const FLOW: &str = "flow_calls.py";

/// What a pyflow session printed with --json: its events, its summary, and the stderr lines of
/// pyflow and of the workload.
struct Session {
    events: Vec<Value>,
    summary: Value,
    stderr: String,
    workload_stderr: String,
    pid: i32,
}

/// Traces a stdin-gated workload by PID with `pyflow ARGS --pid PID` until the workload ends.
fn flow_pid(args: &[&str], script_name: &str) -> (String, String, String, i32) {
    let w = Workload::script(script_name).ready();
    let pid = w.pid();
    let pid_s = pid.to_string();
    let mut all = vec!["flow"];
    all.extend(args);
    all.extend(["--pid", &pid_s]);
    let p = Pyprobe::new(&all).start();
    let wout = w.release("go", Duration::from_secs(120));
    let (stdout, stderr) = p.finish();
    (
        stdout,
        stderr,
        String::from_utf8_lossy(&wout.stderr).into_owned(),
        pid,
    )
}

fn json_session(args: &[&str], script_name: &str) -> Session {
    let mut all = args.to_vec();
    all.push("--json");
    let (stdout, stderr, workload_stderr, pid) = flow_pid(&all, script_name);
    let mut events: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{stderr}"))
        })
        .collect();
    let summary = events.pop().expect("a summary line");
    assert_eq!(summary["event"], "summary", "{summary}");
    Session {
        events,
        summary,
        stderr,
        workload_stderr,
        pid,
    }
}

fn assert_nothing_lost(s: &Session) {
    let lost = &s.summary["lost"];
    for k in [
        "events_lost",
        "functions_full",
        "threads_full",
        "too_deep",
        "code_read_errors",
    ] {
        assert_eq!(lost[k], 0, "{k}: {}\n{}", s.summary, s.stderr);
    }
}

#[test]
fn flow_follows_each_thread_in_program_order() {
    let s = json_session(&["--filter", "flow_calls.py:*"], FLOW);
    let f = flows(&s.events);
    assert_eq!(f.len(), 2, "main thread and one worker: {f:?}");
    assert_eq!(f[0].0, s.pid as u64, "the main thread comes first");
    assert_eq!(f[0].1, [top(0, None), slow_path(0)].concat());
    assert_eq!(f[1].1, call(0, "worker", top(1, None)));
    assert_nothing_lost(&s);
    // main() and <module> were running when pyflow attached: their returns are not shown.
    assert_eq!(s.summary["lost"]["unpaired_returns"], 2, "{}", s.summary);
    assert_eq!(s.summary["events"], s.events.len());
    // Each return's duration is the call's, in the same clock as its time.
    for e in s.events.iter().filter(|e| e["event"] == "return") {
        assert!(e["duration_ns"].as_u64().unwrap() <= e["time_ns"].as_u64().unwrap());
    }
}

#[test]
fn generators_driven_by_send_throw_and_close_keep_depth() {
    let s = json_session(&["--filter", "gen_throw.py:*"], "gen_throw.py");
    let f = flows(&s.events);
    assert_eq!(f.len(), 1);
    let resume = || call(1, "gen", vec![]);
    let after = |d| call(d, "after", vec![]);
    // next, send, throw (caught, yields again), close; then a for loop left by break, whose
    // abandoned generator is closed as it is dropped: every resume is an entry and a return.
    let user = [
        resume(),
        resume(),
        resume(),
        resume(),
        after(1),
        resume(),
        resume(),
        after(1),
    ]
    .concat();
    assert_eq!(f[0].1, [call(0, "user", user), after(0)].concat());
    assert_nothing_lost(&s);
    assert_eq!(s.summary["lost"]["unpaired_returns"], 2, "{}", s.summary);
}

/// Line of `def NAME(` in a workload, so expectations follow the script.
fn def_line(script_name: &str, def: &str) -> u64 {
    let text = std::fs::read_to_string(script(script_name)).unwrap();
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("def {def}(")))
        .unwrap_or_else(|| panic!("no def {def} in {script_name}")) as u64
        + 1
}

#[test]
fn every_call_and_return_of_known_calls_is_shown_exactly() {
    let s = json_session(&[], "known_calls.py");
    assert_nothing_lost(&s);
    // <module>, main() and wait_for_go() were running at attach.
    assert_eq!(s.summary["lost"]["unpaired_returns"], 3, "{}", s.summary);
    // (name, def line) -> (calls, returns), for known_calls.py's functions.
    let mut seen: BTreeMap<(String, u64), (u64, u64)> = BTreeMap::new();
    for e in &s.events {
        if !e["file"].as_str().unwrap().ends_with("/known_calls.py") {
            continue;
        }
        let key = (
            e["function"].as_str().unwrap().to_string(),
            e["line"].as_u64().unwrap(),
        );
        let c = seen.entry(key).or_default();
        if e["event"] == "call" {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    let k = "known_calls.py";
    let mut inits: Vec<(u64, u64)> = seen
        .iter()
        .filter(|((n, _), _)| n == "__init__")
        .map(|(_, c)| *c)
        .collect();
    inits.sort();
    assert_eq!(inits, [(21, 21), (30, 30)], "two classes' __init__ apart");
    for (name, count) in [
        ("fib", 21891),
        ("raiser", 400),
        ("catcher", 100),
        ("gen", 550),
        ("method", 300),
        ("thread_work", 2000),
        ("worker", 4),
        ("größe", 7),
        ("函数", 5),
        ("func1", 1000),
        ("func2", 200),
        ("func3", 30),
    ] {
        let key = (name.to_string(), def_line(k, name));
        assert_eq!(seen.get(&key), Some(&(count, count)), "{key:?}");
    }
    // Depth never drifts: each event's depth is the number of calls open in its thread, and
    // every thread ends with all its calls returned.
    let mut open: BTreeMap<u64, u64> = BTreeMap::new();
    for e in &s.events {
        let depth = open.entry(e["tid"].as_u64().unwrap()).or_default();
        if e["event"] == "call" {
            assert_eq!(e["depth"], *depth, "{e}");
            *depth += 1;
        } else {
            assert!(*depth > 0, "a return below depth 0: {e}");
            *depth -= 1;
            assert_eq!(e["depth"], *depth, "{e}");
        }
    }
    assert_eq!(open.len(), 5, "main thread and 4 workers: {open:?}");
    assert!(open.values().all(|d| *d == 0), "{open:?}");
}

#[test]
fn a_tiny_ring_buffer_loses_events_but_counts_every_one() {
    let s = json_session(&["--filter", "tick", "--buffer-size", "4K"], "flood.py");
    let shown = s.events.len() as u64;
    let lost = s.summary["lost"]["events_lost"].as_u64().unwrap();
    assert_eq!(
        shown + lost,
        200_000,
        "100000 calls and returns: {}",
        s.summary
    );
    assert!(
        lost > 0,
        "a 4 KiB ring cannot hold this flood: {}",
        s.summary
    );
    assert_eq!(s.summary["events"], shown);
    assert!(
        s.stderr
            .contains(&format!("pyflow: {shown} events shown; {lost} events lost")),
        "{}",
        s.stderr
    );
    assert!(
        s.stderr.contains("WARNING: ") && s.stderr.contains("raise --buffer-size"),
        "{}",
        s.stderr
    );
    // Losses break no pairing: depths still come from the kernel's per-thread stack.
    assert!(
        s.events
            .iter()
            .all(|e| e["depth"] == 0 && e["function"] == "tick")
    );
}

#[test]
fn subtree_shows_everything_below_a_match_as_text() {
    let (out, err, _, pid) = flow_pid(&["--filter", "middle", "--subtree"], FLOW);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("    TIME(us)     PID     TID  CALLS"),
        "{out}"
    );
    // main() and <module> were running at attach; nothing was lost. Said on stderr: the
    // trace holds only calls.
    assert!(!out.contains("WARNING"), "{out}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARNING: ")).collect();
    assert_eq!(
        warnings,
        [
            "pyflow: WARNING: 2 returns not timed or shown: their call was already running when tracing began"
        ]
    );
    let mut per_thread: Vec<(String, Vec<String>)> = Vec::new();
    for l in lines {
        // TIME PID TID, then the indented flow.
        let (head, flow) = l.split_at(30);
        let cols: Vec<&str> = head.split_whitespace().collect();
        assert_eq!(cols.len(), 3, "{l}");
        assert!(cols[0].parse::<f64>().is_ok(), "{l}");
        assert_eq!(cols[1], pid.to_string(), "{l}");
        let indent = flow.len() - flow.trim_start().len();
        let words: Vec<&str> = flow.split_whitespace().collect();
        let file_line = words[1];
        assert!(file_line.contains("/flow_calls.py:"), "{l}");
        let mut text = format!("{}{}@{}", words[0], words[2], indent / 2);
        if words[0] == "<-" {
            assert!(words[3].starts_with('(') && words[3].ends_with(')'), "{l}");
            text.push_str(" timed");
        }
        match per_thread.iter_mut().find(|(t, _)| t == cols[2]) {
            Some((_, v)) => v.push(text),
            None => per_thread.push((cols[2].to_string(), vec![text])),
        }
    }
    let want: Vec<String> = call(
        0,
        "middle",
        [call(1, "leaf", vec![]), call(1, "leaf", vec![])].concat(),
    )
    .into_iter()
    .map(|l| if l.starts_with("<-") { l + " timed" } else { l })
    .collect();
    assert_eq!(per_thread.len(), 2, "{out}\n{err}");
    for (_, flow) in &per_thread {
        assert_eq!(flow, &want);
    }
}

#[test]
fn max_depth_counts_shown_calls() {
    let s = json_session(&["--filter", "top", "--subtree", "--max-depth", "2"], FLOW);
    let f = flows(&s.events);
    assert_eq!(f.len(), 2);
    for (_, flow) in &f {
        assert_eq!(flow, &top(0, Some(2)));
    }
    let s = json_session(&["--filter", "flow_calls.py:*", "--max-depth", "1"], FLOW);
    let f = flows(&s.events);
    assert_eq!(
        f[0].1,
        [call(0, "top", vec![]), call(0, "slow_path", vec![])].concat()
    );
    assert_eq!(f[1].1, call(0, "worker", vec![]));
}

#[test]
fn tid_keeps_one_thread() {
    // The workload's main thread has the PID as its TID.
    let w = Workload::script(FLOW).ready();
    let pid = w.pid().to_string();
    let p = Pyprobe::new(&[
        "flow",
        "--filter",
        "flow_calls.py:*",
        "--tid",
        &pid,
        "--json",
        "--pid",
        &pid,
    ])
    .start();
    w.release("go", Duration::from_secs(60));
    let (out, _) = p.finish();
    let mut events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    events.pop();
    let f = flows(&events);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0.to_string(), pid);
    assert_eq!(f[0].1, [top(0, None), slow_path(0)].concat());
}

#[test]
fn min_duration_keeps_only_slow_calls_in_call_order() {
    // slow() sleeps 200 ms; everything else in the workload takes microseconds.
    let s = json_session(
        &["--filter", "flow_calls.py:*", "--min-duration", "50000"],
        FLOW,
    );
    let f = flows(&s.events);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        f[0].1,
        call(0, "slow_path", call(1, "slow", vec![])),
        "{}",
        s.stderr
    );
    assert_eq!(s.summary["records"], "calls");
    assert_eq!(s.summary["delivered"], 2);
    // The workload's own timing of slow(): its sleep inside, the call around it.
    let own: Value = serde_json::from_str(s.workload_stderr.trim()).unwrap();
    let slow = s
        .events
        .iter()
        .find(|e| e["function"] == "slow" && e["event"] == "return")
        .unwrap();
    let d = slow["duration_ns"].as_u64().unwrap();
    let (inside, around) = (
        own["inside"].as_u64().unwrap(),
        own["around"].as_u64().unwrap(),
    );
    assert!(inside <= d && d <= around, "{inside} <= {d} <= {around}");
    let call_ev = s.events.iter().find(|e| e["function"] == "slow").unwrap();
    assert_eq!(
        call_ev["time_ns"].as_u64().unwrap() + d,
        slow["time_ns"].as_u64().unwrap()
    );
}

#[test]
fn chrome_trace_nests_each_threads_calls() {
    let dir = TempDir::new("chrome");
    let path = dir.path().join("trace.json");
    let p = path.to_str().unwrap();
    let (_, err, _, pid) = flow_pid(
        &["--filter", "flow_calls.py:*", "--format", "chrome", "-o", p],
        FLOW,
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("trace is not JSON: {e}\n{err}"));
    let evs = doc["traceEvents"].as_array().unwrap();
    let threads: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "M").collect();
    assert_eq!(threads.len(), 2, "one track per thread");
    let xs: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "X").collect();
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for x in &xs {
        assert_eq!(x["pid"], pid);
        *by_name.entry(x["name"].as_str().unwrap()).or_default() += 1;
    }
    let want: BTreeMap<&str, usize> = [
        ("top", 2),
        ("middle", 2),
        ("leaf", 6),
        ("gen", 6),
        ("catcher", 2),
        ("raiser", 2),
        ("rec", 8),
        ("worker", 1),
        ("slow_path", 1),
        ("slow", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(by_name, want);
    // Every call lies inside a call one level up on its own thread.
    let span = |x: &Value| {
        let ts = x["ts"].as_f64().unwrap();
        (ts, ts + x["dur"].as_f64().unwrap())
    };
    for x in &xs {
        let depth = x["args"]["depth"].as_u64().unwrap();
        if depth == 0 {
            continue;
        }
        let (a, b) = span(x);
        let parents = xs
            .iter()
            .filter(|p| {
                let (pa, pb) = span(p);
                p["tid"] == x["tid"]
                    && p["args"]["depth"].as_u64().unwrap() == depth - 1
                    && pa <= a
                    && b <= pb
            })
            .count();
        assert_eq!(parents, 1, "{x}");
    }
    assert_eq!(doc["otherData"]["lost"]["events_lost"], 0);
}

#[test]
fn folded_stacks_count_calls_and_time_exactly() {
    let (out, err, _, _) = flow_pid(
        &[
            "--filter",
            "flow_calls.py:*",
            "--format",
            "folded",
            "--weight",
            "calls",
        ],
        FLOW,
    );
    let file = script(FLOW);
    let fr = |name: &str| format!("{name} ({file}:{})", def_line(FLOW, name));
    let path = |names: &[&str]| names.iter().map(|n| fr(n)).collect::<Vec<_>>().join(";");
    let mut want: Vec<String> = Vec::new();
    for root in [&["top"][..], &["worker", "top"][..]] {
        let p = |rest: &[&str]| path(&[root, rest].concat());
        want.push(format!("{} 1", p(&[])));
        want.push(format!("{} 1", p(&["middle"])));
        want.push(format!("{} 2", p(&["middle", "leaf"])));
        want.push(format!("{} 3", p(&["gen"])));
        want.push(format!("{} 1", p(&["catcher"])));
        want.push(format!("{} 1", p(&["catcher", "raiser"])));
        for k in 1..=4 {
            want.push(format!("{} 1", p(&vec!["rec"; k])));
        }
    }
    want.push(format!("{} 1", path(&["worker"])));
    want.push(format!("{} 1", path(&["slow_path"])));
    want.push(format!("{} 2", path(&["slow_path", "leaf"])));
    want.push(format!("{} 1", path(&["slow_path", "slow"])));
    want.sort();
    let got: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(got, want, "{err}");

    // Time-weighted: slow()'s own time is its whole call (time.sleep is C, not a frame).
    let (out, _, own, _) = flow_pid(&["--filter", "flow_calls.py:*", "--format", "folded"], FLOW);
    let own: Value = serde_json::from_str(own.trim()).unwrap();
    let slow_line = out
        .lines()
        .find(|l| l.starts_with(&format!("{} ", path(&["slow_path", "slow"]))))
        .unwrap_or_else(|| panic!("{out}"));
    let ns: u64 = slow_line.rsplit(' ').next().unwrap().parse().unwrap();
    let (inside, around) = (
        own["inside"].as_u64().unwrap(),
        own["around"].as_u64().unwrap(),
    );
    assert!(inside <= ns && ns <= around, "{inside} <= {ns} <= {around}");
    // Self times add up: slow_path's subtree holds its sleep, the rest is microseconds.
    let total: u64 = out
        .lines()
        .filter(|l| l.starts_with(&fr("slow_path")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(
        total >= ns && total <= around + 1_000_000,
        "{total} vs {ns}"
    );
}

/// The output file's name chooses SVG (no --format).
#[test]
fn svg_flame_graph_is_well_formed() {
    let dir = TempDir::new("flame");
    let path = dir.path().join("flame.svg");
    let p = path.to_str().unwrap();
    let (out, err, _, _) = flow_pid(&["--filter", "flow_calls.py:*", "--output", p], FLOW);
    assert_eq!(out, "", "{err}");
    let svg = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}: {err}"));
    // Fails (with ElementTree's reason) on a file that is not well-formed XML.
    let check = output_ok(Command::new("python3").args([
        "-c",
        "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); print(r.tag)",
        p,
    ]));
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "{http://www.w3.org/2000/svg}svg"
    );
    assert!(
        svg.contains("slow_path (") && svg.contains("worker ("),
        "{svg}"
    );
}

#[test]
fn bad_flow_options_are_refused_with_one_line() {
    assert_clean_failures(&[
        (&["flow", "--pid", "1", "--subtree"], "give --filter"),
        (
            &["flow", "--pid", "1", "--buffer-size", "3000"],
            "must be a power of two",
        ),
        (
            &["flow", "--pid", "1", "--output", "/nonexistent-dir/x.json"],
            "/nonexistent-dir/x.json",
        ),
        (&["flow", "--pid", "4194304"], "no process with PID 4194304"),
        (&["flow"], "no target"),
    ]);
}

#[test]
fn pyflow_name_runs_the_flow_command() {
    assert_help_under_name("pyflow", &["--subtree", "--min-duration", "EXAMPLES"]);
}

/// The target's function-probe semaphores (line's switches 3.11 into tracing mode).
fn semaphores(pid: i32) -> Vec<u16> {
    let t = pyprobe::target::Target::from_pid(pid).expect("target");
    ["function__entry", "function__return", "line"]
        .iter()
        .map(|p| t.semaphore_value(p).expect("semaphore readable"))
        .collect()
}

#[test]
fn ending_pyflow_leaves_the_target_untraced() {
    let mut w = Workload::script("forever.py").raw();
    let pid = w.pid();
    let stdout = w.child().stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok);
    assert_eq!(lines.next().as_deref(), Some("ready"));
    assert_eq!(semaphores(pid), [0, 0, 0]);
    let pid_s = pid.to_string();
    let p = Pyprobe::new(&["flow", "--pid", &pid_s, "--filter", "tick", "--json"]).start();
    assert_eq!(
        semaphores(pid),
        [1, 1, 1],
        "entries need tracing mode on 3.11"
    );
    // Some ticks traced first: on a busy machine the target may not run for a while.
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(p.pid(), libc::SIGTERM) };
    let (out, err) = p.finish();
    let summary: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary", "{err}");
    let ticks = out.lines().filter(|l| l.contains("\"tick\"")).count() as u64;
    assert!(ticks > 0 && summary["events"] == ticks, "{summary}");
    let mut after = semaphores(pid);
    for _ in 0..50 {
        if after == [0, 0, 0] {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = semaphores(pid);
    }
    assert_eq!(after, [0, 0, 0], "semaphores left raised");
    let a: u64 = lines.next().unwrap().trim().parse().unwrap();
    let b: u64 = lines.next().unwrap().trim().parse().unwrap();
    assert!(b > a && w.alive(), "the target runs on");
}

#[test]
fn a_thread_per_call_process_stays_traced_past_the_stack_table() {
    // 1500 threads one after another: more than pyflow's 1024 per-thread stacks, which are
    // freed when a thread's outermost frame returns.
    let s = json_session(&["--filter", "thread_fn"], "many_threads.py");
    assert_nothing_lost(&s);
    let of = |kind: &str| {
        s.events
            .iter()
            .filter(|e| e["event"] == kind && e["function"] == "thread_fn")
            .count()
    };
    assert_eq!((of("call"), of("return")), (1500, 1500), "{}", s.summary);
}

/// pycount's qualified filters select in pyflow too: `B.*` shows B's method, the body of its
/// class Inner and Inner's method, each call exactly as often as it ran, and not A's `run`.
#[test]
fn a_dotted_filter_shows_only_that_classs_calls() {
    let s = "qualnames.py";
    let tagged = |tag: &str| marked_line(s, &format!("# line:{tag}")) as u64;
    let out = Pyprobe::new(&["flow", "--json", "--filter", "B.*"])
        .spawn(Workload::script(s))
        .run_with_go();
    let stdout = &out.stdout;
    assert!(out.ok, "{}", out.stderr);
    let mut calls: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for l in stdout.lines().filter(|l| l.contains("\"event\":\"call\"")) {
        let v: Value = serde_json::from_str(l).unwrap();
        let key = (
            v["function"].as_str().unwrap().to_string(),
            v["line"].as_u64().unwrap(),
        );
        *calls.entry(key).or_default() += 1;
    }
    let want: BTreeMap<(String, u64), u64> = [
        (("run".to_string(), tagged("B.run")), 5),
        (("Inner".to_string(), tagged("B.Inner")), 1),
        (("run".to_string(), tagged("B.Inner.run")), 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(calls, want, "{stdout}");
}
