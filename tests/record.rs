//! pyprobe record on real processes: a CPU-bound workload whose split between two functions is
//! known from its own clocks profiled within a few points on 3.11 and 3.14; the pprof file
//! decoded by the protobuf runtime and the speedscope file validated against speedscope's
//! schema, both with the same split; flame graphs; --idle on parked threads; bad input.
mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Shares within this many points of the workload's own: at 499 Hz over 3 s (about 1,400
/// samples) the sampling error's standard deviation is about 1.2 points.
const TOLERANCE: f64 = 0.04;

/// split.py's own measure: hot_a's share of the CPU time of hot_a and hot_b.
fn measured_share(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.contains("hot_a"))
        .unwrap_or_else(|| panic!("no measurement in {stdout}"));
    let v: Value = serde_json::from_str(line).unwrap();
    let (a, b) = (v["hot_a"].as_f64().unwrap(), v["hot_b"].as_f64().unwrap());
    a / (a + b)
}

/// The names of a JSON stack's frames, innermost first.
fn frame_names(stack: &Value) -> Vec<&str> {
    stack["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

/// Samples per function (anywhere on the stack) from record's JSON.
fn json_functions(doc: &Value) -> (u64, u64) {
    let mut a = 0;
    let mut b = 0;
    for s in doc["stacks"].as_array().unwrap() {
        let names = frame_names(s);
        let n = s["samples"].as_u64().unwrap();
        if names.contains(&"hot_a") {
            a += n;
        }
        if names.contains(&"hot_b") {
            b += n;
        }
    }
    (a, b)
}

/// hot_a's and hot_b's samples (by function) split as split.py measured itself.
fn assert_split(functions: &Value, stdout: &str) {
    assert_share(
        functions["hot_a"].as_f64().unwrap(),
        functions["hot_b"].as_f64().unwrap(),
        measured_share(stdout),
    );
}

fn assert_share(profiled_a: f64, profiled_b: f64, measured: f64) {
    let share = profiled_a / (profiled_a + profiled_b);
    assert!(
        (share - measured).abs() <= TOLERANCE,
        "profiled hot_a share {share:.3}, measured {measured:.3}"
    );
}

/// Records split.py by --pid, from before its work to its exit.
fn split_by_pid(py: Python) {
    let mut w = spawn_ready_keeping_stdout(&py);
    let pid = w.0.pid().to_string();
    let out_dir = TempDir::new("record");
    let path = out_dir.file(&format!("split-{pid}.json"));
    let p = Pyprobe::new(&[
        "record", "--pid", &pid, "--rate", "499", "--format", "json", "-o", &path,
    ])
    .start();
    w.0.send_line("go");
    let measured = measured_share(&w.1.recv_timeout(Duration::from_secs(60)).unwrap());
    let (_, err) = p.finish();
    assert!(err.contains("samples in"), "{err}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (a, b) = json_functions(&doc);
    assert!(a + b > 800, "{a} + {b} samples");
    assert_share(a as f64, b as f64, measured);
    assert_eq!(doc["rate_hz"], 499);
}

/// A workload that printed "ready", its stdout's next line delivered through a channel.
fn spawn_ready_keeping_stdout(py: &Python) -> (Guard, std::sync::mpsc::Receiver<String>) {
    spawn_script_keeping_stdout(py, "split.py")
}

fn spawn_script_keeping_stdout(
    py: &Python,
    name: &str,
) -> (Guard, std::sync::mpsc::Receiver<String>) {
    Workload::script(name).on(py).args(&["3"]).ready_lines()
}

tests_of!(split_by_pid {
    split_on_3_11: (Python::debian());
    split_on_3_14: (Python::sid("3.14"));
});

/// `record --pid PID --async --format folded` on an asyncio workload with a heavy and a light
/// handler: the CPU seconds each took by its own clocks, what pyprobe said, and the folded
/// stacks.
fn record_async(py: &Python, script_name: &str) -> (f64, f64, String, String) {
    let mut w = spawn_script_keeping_stdout(py, script_name);
    let pid = w.0.pid().to_string();
    let out_dir = TempDir::new("record");
    let path = out_dir.file("async.folded");
    let p = Pyprobe::new(&[
        "record", "--pid", &pid, "--async", "--rate", "499", "--format", "folded", "-o", &path,
    ])
    .start();
    w.0.send_line("go");
    let line = w.1.recv_timeout(Duration::from_secs(60)).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
    let (heavy, light) = (v["heavy"].as_f64().unwrap(), v["light"].as_f64().unwrap());
    let (_, err) = p.finish();
    let folded = std::fs::read_to_string(&path).unwrap();
    (heavy, light, err, folded)
}

/// heavy's share of the heavy and light samples (`a`, `b`) within `tolerance` of its share of
/// the CPU seconds the workload measured; both shares.
fn assert_heavy_share(
    a: u64,
    b: u64,
    heavy: f64,
    light: f64,
    tolerance: f64,
    folded: &str,
) -> (f64, f64) {
    let share = a as f64 / (a + b) as f64;
    let measured = heavy / (heavy + light);
    assert!(
        (share - measured).abs() <= tolerance,
        "profiled heavy share {share:.3} ({a} of {}), measured {measured:.3}\n{folded}",
        a + b
    );
    (share, measured)
}

/// record --async on async_split.py by --pid: each handler task's samples under `task main;task
/// server;task heavy` (light), no event-loop frame between, and heavy's share of the two
/// within a few points of the workload's own clocks.
fn async_split(py: Python) {
    let (heavy, light, err, folded) = record_async(&py, "async_split.py");
    assert!(err.contains("samples in"), "{err}");
    let (mut a, mut b) = (0u64, 0u64);
    for l in folded.lines() {
        let (stack, n) = l.rsplit_once(' ').unwrap();
        let n: u64 = n.parse().unwrap();
        for (handler, task, sum) in [
            ("handle_heavy (", "heavy", &mut a),
            ("handle_light (", "light", &mut b),
        ] {
            if !stack.contains(handler) {
                continue;
            }
            let under = format!("task main;task server;task {task};{handler}");
            assert!(stack.starts_with(&under), "{l}\nnot under {under}");
            for event_loop in ["run_forever", "_run_once", "Handle._run"] {
                assert!(!stack.contains(event_loop), "{l}");
            }
            *sum += n;
        }
    }
    assert!(a + b > 800, "{a} + {b} samples:\n{folded}");
    let (share, measured) = assert_heavy_share(a, b, heavy, light, TOLERANCE, &folded);
    eprintln!(
        "{}: heavy {share:.3} profiled ({a} of {} samples), {measured:.3} measured",
        py.exe,
        a + b
    );
}

/// Short tasks: a task whose coroutine is made at a finished one's address is counted under
/// the finished task's name until the next read of the tasks sees it (20-35 ms here), which
/// moves some of the heavy requests' samples to light ones (measured 3-5 points on 3.11).
const REQUESTS_TOLERANCE: f64 = 0.07;

/// record --async on async_requests.py: requests as short tasks (heavy-N and light-N, a few
/// tens of ms each, four in flight, their coroutines at addresses the finished ones had) each
/// under its own name (no task awaits them but the last ones), heavy's share within a few
/// points, and few samples of tasks that finished unnamed.
fn async_requests(py: Python) {
    let (heavy, light, err, folded) = record_async(&py, "async_requests.py");
    assert!(err.contains("asyncio tasks read"), "{err}");
    let (mut a, mut b, mut finished) = (0u64, 0u64, 0u64);
    for l in folded.lines() {
        let (stack, n) = l.rsplit_once(' ').unwrap();
        let n: u64 = n.parse().unwrap();
        if !stack.contains(";handle (") {
            continue;
        }
        // No task awaits a request until the server gathers the last ones.
        let stack = stack
            .strip_prefix("task main;task server;")
            .unwrap_or(stack);
        for event_loop in ["run_forever", "_run_once", "Handle._run"] {
            assert!(!stack.contains(event_loop), "{l}");
        }
        if stack.starts_with("task heavy-") {
            a += n;
        } else if stack.starts_with("task light-") {
            b += n;
        } else if stack.starts_with("task <finished task>;handle (") {
            finished += n;
        } else {
            panic!("{l}: not under its task");
        }
    }
    let all = a + b + finished;
    assert!(a + b > 800, "{a} + {b} samples:\n{folded}");
    assert!(
        finished * 20 <= all,
        "{finished} of {all} samples of tasks never named"
    );
    let (share, measured) = assert_heavy_share(a, b, heavy, light, REQUESTS_TOLERANCE, "");
    eprintln!(
        "{}: requests: heavy {share:.3} profiled ({a} of {} samples), {measured:.3} measured, \
         {finished} samples of finished tasks never named; {}",
        py.exe,
        a + b,
        err.lines().find(|l| l.contains("tasks read")).unwrap_or("")
    );
}

#[test]
fn async_requests_on_3_11() {
    async_requests(Python::debian());
}

#[test]
fn async_split_on_3_11() {
    async_split(Python::debian());
}

#[test]
fn async_split_on_pyenv_3_12_3_13() {
    async_split(Python::pyenv("3.12"));
    async_split(Python::pyenv("3.13"));
}

#[test]
fn async_split_on_sid_3_14_3_15() {
    async_split(Python::sid("3.14"));
    async_split(Python::sid("3.15"));
}

/// Before 3.11 a coroutine's frame is an object of its own: --async is refused in one line
/// naming the version and what works.
#[test]
fn async_before_3_11_is_refused_naming_what_works() {
    let old = sleeping(&Python::pyenv("3.10"));
    let pid = old.pid().to_string();
    for says in ["(CPython 3.10", "record --async needs CPython 3.11-3.15"] {
        assert_clean_failure(&["record", "--async", "--pid", &pid, "-d", "1"], says);
    }
}

/// Records split.py started by pyprobe (`-- COMMAND`), from its first bytecode to its exit.
fn split_spawned(py: Python, copy_as: &str) {
    let out_dir = TempDir::new("record");
    let path = out_dir.file(&format!("{copy_as}.json"));
    // A copy of its own in a chroot: tests running at once never rewrite a file being read.
    let workload = py.file(&script("split.py"), copy_as);
    let out = Pyprobe::new(&["record", "--rate", "499", "--format", "json", "-o", &path])
        .spawn(Workload::path(&workload).on(&py))
        .run_with_go();
    let stdout = &out.stdout;
    assert!(out.ok, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (a, b) = json_functions(&doc);
    assert!(
        a + b > 800,
        "{a} + {b} samples of {}:\n{stdout}",
        doc["samples"]
    );
    assert_share(a as f64, b as f64, measured_share(stdout));
}

tests_of!(split_spawned {
    split_on_pyenv_3_8: (Python::pyenv("3.8"), "split-3.8.py");
    split_on_pyenv_3_12: (Python::pyenv("3.12"), "split-3.12.py");
    split_on_sid_3_15: (Python::sid("3.15"), "split-3.15.py");
});

#[test]
fn pprof_decodes_with_the_split() {
    let out_dir = TempDir::new("record");
    let path = out_dir.file("split.pb.gz");
    let (stdout, _) = Pyprobe::new(&["record", "--rate", "499", "--format", "pprof", "-o", &path])
        .spawn(Workload::script("split.py"))
        .run_with_go_ok();
    let p = readers::check("check_pprof.py", &[&path]);
    assert_eq!(
        p["sample_types"][0],
        serde_json::json!(["samples", "count"])
    );
    assert_eq!(
        p["sample_types"][1],
        serde_json::json!(["cpu", "nanoseconds"])
    );
    assert_eq!(p["period"], 1_000_000_000 / 499);
    assert_eq!(p["labels"], serde_json::json!(["thread_id", "thread_name"]));
    let f = &p["functions"];
    assert_split(f, &stdout);
}

#[test]
fn speedscope_validates_with_the_split() {
    let out_dir = TempDir::new("record");
    let path = out_dir.file("split.speedscope.json");
    let (stdout, _) = Pyprobe::new(&[
        "record",
        "--rate",
        "499",
        "--format",
        "speedscope",
        "-o",
        &path,
    ])
    .spawn(Workload::script("split.py"))
    .run_with_go_ok();
    let schema = readers::speedscope_schema();
    let profiles = readers::check("check_speedscope.py", &[schema.to_str().unwrap(), &path]);
    let p = &profiles[0];
    assert_eq!(profiles.as_array().unwrap().len(), 1, "merged: one profile");
    let f = &p["functions"];
    assert_split(f, &stdout);
}

#[test]
fn flame_graphs_folded_and_svg() {
    // One second of the workload's CPU is enough here.
    let short = |args: &[&str]| {
        let out = Pyprobe::new(args)
            .spawn(Workload::script("split.py").args(&["1"]))
            .run_with_go();
        assert!(out.ok, "{}", out.stderr);
        out.stderr
    };
    let out_dir = TempDir::new("record");
    let folded = out_dir.file("split.folded");
    let err = short(&[
        "record",
        "--per-thread",
        "--format",
        "folded",
        "-o",
        &folded,
    ]);
    let text = std::fs::read_to_string(&folded).unwrap();
    let total: u64 = text
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    let said: u64 = err
        .lines()
        .find_map(|l| {
            l.strip_prefix("pyprobe record: ")?
                .split(" samples in")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(total, said, "every sample is in the folded stacks");
    assert!(
        text.lines().all(|l| l.starts_with("thread ")),
        "a root frame per thread:\n{text}"
    );
    assert!(
        text.contains(";hot_a (") && text.contains(";spin ("),
        "{text}"
    );

    let out_dir = TempDir::new("record");

    let svg = out_dir.file("split.svg");
    short(&["record", "--format", "svg", "-o", &svg]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<?xml") && text.trim_end().ends_with("</svg>"));
    assert!(text.contains("hot_a") && text.contains("hot_b"));
}

fn parked() -> Guard {
    parked_with_names().0
}

/// parked.py running, with the name threading gives each thread, by thread id.
fn parked_with_names() -> (Guard, Value) {
    let (g, lines) = Workload::script("parked.py").lines();
    let first: Value = serde_json::from_str(&lines.recv().unwrap()).unwrap();
    assert_eq!(lines.recv().ok().as_deref(), Some("ready"));
    (g, first["names"].clone())
}

/// Each thread is named as threading names it (issue 22), in JSON and in per-thread folded
/// stacks' root frames, read from the process's memory.
#[test]
fn threads_are_named_as_threading_names_them() {
    let (p, names) = parked_with_names();
    let doc = record_json(p.pid(), &["--idle"]);
    let stacks = doc["stacks"].as_array().unwrap();
    for (tid, name) in names.as_object().unwrap() {
        let tid: u64 = tid.parse().unwrap();
        let of_thread: Vec<&Value> = stacks.iter().filter(|s| s["tid"] == tid).collect();
        assert!(!of_thread.is_empty(), "no samples of thread {tid}: {doc}");
        assert!(
            of_thread.iter().all(|s| &s["thread"] == name),
            "{name}: {doc}"
        );
    }
    let worker = stacks
        .iter()
        .find(|s| frame_names(s).contains(&"w2"))
        .unwrap();
    assert_eq!(worker["thread"], "parked-worker");

    let out_dir = TempDir::new("record");

    let folded = out_dir.file("named-threads.folded");
    let pid = p.pid().to_string();
    let out = Pyprobe::new(&[
        "record",
        "--pid",
        &pid,
        "--idle",
        "--per-thread",
        "-d",
        "1",
        "-o",
        &folded,
    ])
    .run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&folded).unwrap();
    let roots: std::collections::BTreeSet<&str> =
        text.lines().filter_map(|l| l.split(';').next()).collect();
    let want: std::collections::BTreeSet<String> = names
        .as_object()
        .unwrap()
        .iter()
        .map(|(tid, n)| format!("thread {tid} {}", n.as_str().unwrap()))
        .collect();
    assert_eq!(roots, want.iter().map(String::as_str).collect(), "{text}");
}

fn record_json(pid: i32, extra: &[&str]) -> Value {
    let pid = pid.to_string();
    let mut args = vec!["record", "--pid", &pid, "--format", "json", "-d", "1"];
    args.extend(extra);
    Pyprobe::new(&args).json()
}

/// Whether one of a stack's frames is a function named `name`.
fn has_frame(stack: &Value, name: &str) -> bool {
    element_where(&stack["frames"], "name", name).is_some()
}

/// Samples per thread of stacks whose frames include `name`.
fn samples_with(doc: &Value, name: &str) -> Vec<u64> {
    doc["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| has_frame(s, name))
        .map(|s| s["samples"].as_u64().unwrap())
        .collect()
}

#[test]
fn idle_threads_only_with_idle() {
    let p = parked();
    let on_cpu = record_json(p.pid(), &[]);
    assert!(samples_with(&on_cpu, "c").is_empty(), "{on_cpu}");
    let idle = record_json(p.pid(), &["--idle"]);
    let (main, worker) = (samples_with(&idle, "c"), samples_with(&idle, "w2"));
    assert_eq!((main.len(), worker.len()), (1, 1), "{idle}");
    // Both sleep through every tick: each tick samples each once.
    assert!(main[0] > 0 && main[0].abs_diff(worker[0]) <= 1, "{idle}");
    let stack = idle["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["samples"] == main[0] && s["frames"][2]["name"] == "c")
        .expect("main thread's stack");
    let names = frame_names(stack);
    assert_eq!(
        names,
        ["Condition.wait", "Event.wait", "c", "b", "a", "<module>"]
    );
}

/// The table's rows and which line they name (issue 22): a function at its def line, or with
/// --lines each line running, as Python's own frames say (parked.py's threads wait on known
/// lines); every line of one parked stack has that stack's samples.
#[test]
fn the_table_names_def_lines_and_with_lines_the_lines_running() {
    let p = parked();
    let pid = p.pid().to_string();
    let file = script("parked.py");
    let source = std::fs::read_to_string(&file).unwrap();
    // The line of the first line after `after` that reads `text` (trimmed), 1-based.
    let line_of = |text: &str, after: usize| {
        source
            .lines()
            .enumerate()
            .skip(after)
            .find(|(_, l)| l.trim() == text)
            .map(|(i, _)| i + 1)
            .unwrap_or_else(|| panic!("no {text:?} in parked.py"))
    };
    let def_c = line_of("def c(depth):", 0);
    let def_w2 = line_of("def w2():", 0);
    let running = [
        ("c", line_of("stop.wait()", def_c)),
        ("b", line_of("return c(3)", 0)),
        ("a", line_of("return b()", 0)),
        ("w2", line_of("stop.wait()", def_w2)),
        ("w1", line_of("w2()", def_w2 + 1)),
    ];
    let table = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["record", "--pid", &pid, "--idle", "-d", "1"];
        args.extend(extra);
        let out = Pyprobe::new(&args).run();
        assert!(out.status.success(), "{out:?}");
        // The table's lines, without the WARNING lines that end a report with its losses (on
        // a loaded machine an --idle pass can run late and be counted as not taken).
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("WARNING: "))
            .map(str::to_string)
            .collect()
    };
    // A row's TOTAL column, for the row that ends with `label`.
    let total_of = |rows: &[String], label: &str| -> Option<String> {
        rows.iter()
            .find(|r| r.ends_with(label))
            .map(|r| r.split_whitespace().nth(3).unwrap().to_string())
    };

    // The header says what a row is; c's row (by its def line) is in the table by functions.
    let assert_table = |rows: &[String], header: &str, c_shown: bool| {
        assert!(rows[1].ends_with(header), "{rows:?}");
        let c = total_of(rows, &format!("  c ({file}:{def_c})"));
        assert_eq!(c.is_some(), c_shown, "{rows:?}");
    };

    let functions = table(&[]);
    assert_table(&functions, "FUNCTION (FILE:DEF LINE)", true);
    for (name, line) in running {
        assert!(
            total_of(&functions, &format!("  {name} ({file}:{line})")).is_none(),
            "{name}:{line} is a running line: {functions:?}"
        );
    }

    let lines = table(&["--lines"]);
    assert_table(&lines, "FUNCTION (FILE:LINE RUNNING)", false);
    let totals: Vec<String> = running
        .iter()
        .map(|(name, line)| {
            total_of(&lines, &format!("  {name} ({file}:{line})"))
                .unwrap_or_else(|| panic!("no row {name}:{line}: {lines:?}"))
        })
        .collect();
    // The main thread's lines share its samples, the worker's its own: both parked throughout.
    assert_eq!(totals[0], totals[1], "{lines:?}");
    assert_eq!(totals[1], totals[2], "{lines:?}");
    assert_eq!(totals[3], totals[4], "{lines:?}");
    assert_ne!(totals[0], "0.00s");
    // --top cuts the table, --lines is for tables only.
    let top = table(&["--lines", "--top", "3"]);
    assert_eq!(top.len(), 2 + 3, "{top:?}");
    assert_clean_failure(
        &["record", "--pid", &pid, "--lines", "-o", "x.svg"],
        "--lines is for the table (text)",
    );
}

/// Threads the target starts after pyprobe attached are sampled, each under its own thread id
/// and its own function.
#[test]
fn threads_started_later_are_sampled() {
    let (mut g, lines) = Workload::script("threads_later.py").ready_lines();
    let pid = g.pid().to_string();
    let out_dir = TempDir::new("record");
    let path = out_dir.file(&format!("threads-{pid}.json"));
    let p = Pyprobe::new(&["record", "--pid", &pid, "--format", "json", "-o", &path]).start();
    g.send_line("go");
    let ids: Value = serde_json::from_str(&lines.recv().unwrap()).unwrap();
    let _ = p.finish();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for f in ["burn_one", "burn_two"] {
        let tid = ids[f].as_u64().unwrap();
        let samples: u64 = doc["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["tid"].as_u64() == Some(tid))
            .filter(|s| has_frame(s, f))
            .map(|s| s["samples"].as_u64().unwrap())
            .sum();
        // A second of its CPU at 100 Hz.
        assert!(
            samples >= 50,
            "{f} in thread {tid}: {samples} samples\n{doc}"
        );
    }
}

#[test]
fn bad_input_is_one_line() {
    assert_clean_failure(&["record", "--pid", "1", "--rate", "0"], "--rate");
    assert_clean_failure(
        &["record", "--pid", "1", "--format", "chrome"],
        "pyprobe record has no --format chrome",
    );
    assert_clean_failure(&["record"], "no target");
    assert_clean_failure(
        &["record", "--pid", "1", "--tid", "3", "--all-threads"],
        "give one of them",
    );
    let old = sleeping(&Python::pyenv("3.7"));
    assert_clean_failure(
        &["record", "--pid", &old.pid().to_string(), "-d", "1"],
        "pyprobe knows the layouts of CPython 3.8 to 3.15",
    );
}

/// --idle samples a parked thread from userspace; a stack deeper than the sampler keeps is
/// marked truncated, and each of its samples is counted as truncated, as the kernel counts
/// its own.
#[test]
fn idle_samples_of_deep_stacks_are_counted_as_truncated() {
    let w = Workload::script("deep_stack.py").ready();
    let doc = record_json(w.pid(), &["--idle"]);
    let stacks = doc["stacks"].as_array().unwrap();
    let truncated: u64 = stacks
        .iter()
        .filter(|s| s["truncated"] == true)
        .map(|s| s["samples"].as_u64().unwrap())
        .sum();
    let deep = stacks
        .iter()
        .find(|s| s["frames"][0]["name"] == "park")
        .unwrap_or_else(|| panic!("no sample of the parked thread: {doc}"));
    assert_eq!(deep["truncated"], true);
    assert_eq!(deep["frames"].as_array().unwrap().len(), 128);
    assert!(truncated >= 50, "a second at 100 Hz: {doc}");
    assert_eq!(doc["lost"]["stacks_truncated"], truncated, "{doc}");
}

/// --idle on 2000 parked threads: a pass over them outlasts the 10 ms period, and the passes
/// not taken are reported (before: a tenth of the rate asked, said nowhere).
#[test]
fn idle_passes_missed_over_many_threads_are_reported() {
    let w = Workload::script("many_parked.py").ready();
    let doc = record_json(w.pid(), &["--idle", "--rate", "100"]);
    // Each pass samples every parked thread once: the passes taken are one thread's samples.
    let per_thread: Vec<u64> = samples_with(&doc, "park");
    assert!(
        per_thread.len() >= 1900,
        "{} threads sampled",
        per_thread.len()
    );
    let passes = *per_thread.iter().max().unwrap();
    let missed = doc["lost"]["idle_passes_missed"].as_u64().unwrap_or(0);
    // The passes due over the session (100 a second): taken and missed add up to them.
    let due = doc["elapsed_ns"].as_u64().unwrap() as f64 * 100.0 / 1e9;
    let accounted = (passes + missed) as f64;
    assert!(
        (accounted - due).abs() <= (due / 10.0).max(5.0),
        "{passes} passes taken, {missed} reported missed, {due:.0} due"
    );
    if (passes as f64) < 0.8 * due {
        assert!(
            missed > 0,
            "{passes} passes taken of {due:.0} due, none reported missed"
        );
    }
}

/// Without --format, the output file's name chooses it (issue 22: `-o out.svg` wrote a text
/// table); a --format the name contradicts is refused before anything is traced.
#[test]
fn the_output_files_name_chooses_the_format() {
    let record = |file: &str| {
        let out_dir = TempDir::new("record");
        let path = out_dir.file(file);
        let out = Pyprobe::new(&["record", "-d", "1s", "-o", &path])
            .spawn(Workload::script("split.py").args(&["1"]))
            .run_with_go();
        assert!(out.ok, "{}", out.stderr);
        std::fs::read(&path).unwrap()
    };
    let svg = String::from_utf8(record("named.svg")).unwrap();
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("hot_a"), "{svg}");
    let pprof = record("named.pb.gz");
    assert_eq!(pprof[..2], [0x1f, 0x8b], "gzip");
    let speedscope: Value = serde_json::from_slice(&record("named.speedscope.json")).unwrap();
    assert_eq!(
        speedscope["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );
    let folded = String::from_utf8(record("named.txt")).unwrap();
    assert!(
        folded.lines().all(|l| l
            .rsplit_once(' ')
            .is_some_and(|(_, n)| n.parse::<u64>().is_ok())),
        "{folded}"
    );
    assert_clean_failure(
        &["record", "--pid", "1", "--format", "text", "-o", "out.svg"],
        "pyprobe: error: --format text contradicts the output file's name: out.svg names an \
         SVG file; drop --format, or name the file for text",
    );
    assert_clean_failure(
        &["count", "--pid", "1", "-o", "out.pb.gz"],
        "pycount has no --format pprof (chosen by the output file's name",
    );
}
