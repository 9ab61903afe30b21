//! pyprobe audit against real CPython processes with real BPF: known file, subprocess, shell
//! and socket events with their decoded path, command and address; the in-kernel --event glob;
//! the object layouts of 3.13-3.15; and the error paths.
mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Events (one JSON object per line) and the closing summary from pyprobe's stdout.
fn parse_stream(stdout: &str) -> (Vec<Value>, Value) {
    let docs = json_lines(stdout);
    let (summary, events) = docs.split_last().expect("a summary line");
    assert!(
        summary.get("events").is_some(),
        "last line is the summary: {summary}"
    );
    assert_eq!(
        summary["events"],
        events.len(),
        "every event printed is counted"
    );
    (events.to_vec(), summary.clone())
}

/// Runs `interpreter ARGS` (it prints "ready", waits for a line, then prints `known {...}`),
/// traces it by PID with `pyprobe audit EXTRA --json`, and returns (events, summary, known).
fn trace_workload(cmd: Command, extra: &[&str]) -> (Vec<Value>, Value, Value, i32) {
    let (mut w, lines) = Workload::command(cmd).ready_lines();
    let pid = w.pid();
    let pid_s = pid.to_string();
    let mut args = vec!["audit", "--pid", &pid_s, "--json"];
    args.extend(extra);
    let p = Pyprobe::new(&args).start();
    w.send_line("go");
    let known = lines
        .iter()
        .find_map(|l| l.strip_prefix("known ").map(str::to_string))
        .expect("the workload's known values");
    let wout = w.wait_output(Duration::from_secs(60));
    assert!(wout.status.success(), "workload failed");
    let (stdout, stderr) = p.finish();
    let (events, summary) = parse_stream(&stdout);
    assert!(!events.is_empty() || !extra.is_empty(), "{stderr}");
    (events, summary, serde_json::from_str(&known).unwrap(), pid)
}

fn workload311() -> Command {
    let mut c = Command::new(PYTHON);
    c.arg(script("audit_events.py"));
    c
}

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

#[test]
fn decodes_the_path_command_and_address_of_known_events() {
    let (events, summary, known, pid) = trace_workload(workload311(), &[]);
    assert!(
        events.iter().all(|e| e["pid"] == pid),
        "only the target's events"
    );
    assert_eq!(summary["arguments_decoded"], true);
    assert_eq!(summary["lost"], json!({"events_lost": 0, "read_errors": 0}));

    // mkstemp's os.open (no mode), then open(path, "w").
    let opens: Vec<&Value> = named(&events, "open")
        .into_iter()
        .filter(|e| e["args"]["path"] == known["path"])
        .collect();
    let modes: Vec<&Value> = opens.iter().map(|e| &e["args"]["mode"]).collect();
    assert_eq!(modes, [&Value::Null, &json!("w")], "{opens:?}");

    // A non-ASCII path is reported as not decoded, with its length, never as garbage.
    let non_ascii: Vec<&Value> = named(&events, "open")
        .into_iter()
        .filter(|e| e["args"]["path"].is_object())
        .collect();
    assert_eq!(non_ascii.len(), 1, "{non_ascii:?}");
    assert_eq!(
        non_ascii[0]["args"]["path"],
        json!({"type": "str", "decoded": false, "why": "non-ASCII", "length": known["non_ascii_path_chars"]})
    );

    let popen = named(&events, "subprocess.Popen");
    assert_eq!(popen.len(), 1, "{popen:?}");
    assert_eq!(popen[0]["args"]["executable"], "/bin/echo");
    assert_eq!(
        popen[0]["args"]["args"],
        json!(["/bin/echo", "pyprobe-audit-test", "two"])
    );

    let system = named(&events, "os.system");
    assert_eq!(system.len(), 1);
    assert_eq!(
        system[0]["args"]["command"],
        json!({"type": "bytes", "text": "true pyprobe-system-test", "truncated": false})
    );

    let bind = named(&events, "socket.bind");
    assert_eq!(bind.len(), 1);
    assert_eq!(bind[0]["args"]["address"], json!(["127.0.0.1", 0]));
    let connect = named(&events, "socket.connect");
    assert_eq!(connect.len(), 1);
    assert_eq!(
        connect[0]["args"]["address"],
        json!(["127.0.0.1", known["port"]])
    );
    assert_eq!(
        connect[0]["detail"],
        format!("socket=<socket> address=127.0.0.1:{}", known["port"])
    );

    let compiled: Vec<&Value> = named(&events, "compile")
        .into_iter()
        .filter(|e| e["args"]["filename"] == "<pyprobe-compiled>")
        .collect();
    assert_eq!(compiled.len(), 1);
    assert_eq!(compiled[0]["args"]["source"]["text"], "6 * 7");
    // Events pyprobe does not decode still show, with their name and argument count.
    assert!(
        named(&events, "socket.__new__")
            .iter()
            .all(|e| e["args"] == json!({}))
    );
    assert_eq!(named(&events, "socket.__new__")[0]["nargs"], 4);
}

#[test]
fn event_globs_filter_in_the_kernel() {
    let (events, _, known, _) = trace_workload(workload311(), &["--event", "socket.*"]);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("socket.")), "{names:?}");
    assert_eq!(named(&events, "socket.bind").len(), 1);
    assert_eq!(
        named(&events, "socket.connect")[0]["args"]["address"][1],
        known["port"]
    );

    let (events, _, _, _) = trace_workload(
        workload311(),
        &["--event", "subprocess.Popen", "--event", "os.sys?em"],
    );
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["subprocess.Popen", "os.system"]);
}

#[test]
fn a_spawned_command_streams_a_table() {
    let (stdout, _) = Pyprobe::new(&["audit", "--event", "socket.connect"])
        .spawn(Workload::script("audit_events.py"))
        .run_with_go_ok();
    let known = json_after(&stdout, "known ");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" socket.connect "))
        .collect();
    assert_eq!(rows.len(), 1, "{stdout}");
    assert!(
        rows[0].ends_with(&format!("address=127.0.0.1:{}", known["port"])),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l == "1 events"), "{stdout}");
}

/// The same decoding through the object layouts of newer versions (Debian sid's builds).
#[test]
fn decodes_on_cpython_3_13_to_3_15() {
    for v in ["3.13", "3.14", "3.15"] {
        let mut cmd = Python::sid(v).interpreter();
        cmd.args([
            "-c",
            "import os, socket, sys\n\
             print('ready', flush=True)\n\
             sys.stdin.readline()\n\
             s = socket.socket()\n\
             s.bind(('127.0.0.1', 0))\n\
             os.system('true ' + sys.version[:4])\n\
             print('known {\"port\": %d}' % s.getsockname()[1], flush=True)\n",
        ]);
        let (events, summary, _, _) =
            trace_workload(cmd, &["--event", "socket.bind", "--event", "os.system"]);
        assert_eq!(summary["arguments_decoded"], true, "{v}");
        assert_eq!(
            named(&events, "socket.bind")[0]["args"]["address"],
            json!(["127.0.0.1", 0]),
            "{v}"
        );
        assert_eq!(
            named(&events, "os.system")[0]["args"]["command"]["text"],
            format!("true {v}"),
            "{v}"
        );
    }
}

#[test]
fn a_python_without_probes_is_refused() {
    assert_refuses_a_python_without_probes("audit");
}

#[test]
fn bad_arguments_are_refused() {
    assert_clean_failures(&[
        (&["audit"], "no target"),
        (
            &["audit", "--pid", "1", "--event", "[so]cket"],
            "invalid --event \"[so]cket\"",
        ),
        (
            &[
                "audit", "--pid", "1", "-e", "a", "-e", "b", "-e", "c", "-e", "d", "-e", "e",
            ],
            "at most 4 --event patterns",
        ),
    ]);
}

/// The extremes of what `--event` accepts each load at once and select exactly: the shortest
/// glob, the longest, all `*` and all `?`, and four of the longest together (the verifier once
/// gave up on one-byte globs).
#[test]
fn every_extreme_glob_loads_and_selects_exactly() {
    let longest = pyprobe::trace::glob::LONGEST;
    let long = "e".repeat(longest);
    // Events of the workload's own, each a known number of times.
    let fired = [("a", 3), ("b", 5), ("ab", 2), (long.as_str(), 4)];
    let program = format!(
        "import sys\nprint('ready', flush=True)\nsys.stdin.readline()\n\
         for name, n in {fired:?}:\n    for _ in range(n):\n        sys.audit(name)\n\
         print('known {{}}', flush=True)\n"
    );
    let stars = "*".repeat(longest);
    let questions = "?".repeat(longest);
    let every: Vec<(&str, usize)> = fired.to_vec();
    for (globs, want, only_these) in [
        (vec!["a"], vec![("a", 3)], true),
        (vec!["?"], vec![("a", 3), ("b", 5)], true),
        (vec!["*"], every.clone(), false),
        (vec![long.as_str()], vec![(long.as_str(), 4)], true),
        (vec![questions.as_str()], vec![(long.as_str(), 4)], true),
        (vec![stars.as_str()], every.clone(), false),
        (
            vec![questions.as_str(), stars.as_str(), long.as_str(), "?b"],
            every.clone(),
            false,
        ),
    ] {
        let mut cmd = Command::new(PYTHON);
        cmd.args(["-c", &program]);
        let mut extra = Vec::new();
        for g in &globs {
            extra.extend(["--event", g]);
        }
        let (events, summary, _, _) = trace_workload(cmd, &extra);
        assert_eq!(summary["lost"]["events_lost"], 0);
        for &(name, n) in &want {
            assert_eq!(named(&events, name).len(), n, "{globs:?}: {name}");
        }
        let ours = |e: &&Value| fired.iter().any(|(n, _)| e["event"] == *n);
        let unwanted: Vec<&Value> = events
            .iter()
            .filter(|e| !want.iter().any(|(n, _)| e["event"] == *n))
            .collect();
        if only_these {
            assert!(unwanted.is_empty(), "{globs:?}: {unwanted:?}");
        } else {
            assert!(!unwanted.iter().any(ours), "{globs:?}: {unwanted:?}");
        }
    }
    assert_clean_failure(
        &["audit", "--pid", "1", "--event", &"?".repeat(longest + 1)],
        &format!("longer than {longest} bytes"),
    );
}
