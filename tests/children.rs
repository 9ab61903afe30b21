//! `pycount --subprocesses`: the processes the traced one forks during a session (os.fork,
//! multiprocessing's fork workers, a grandchild) counted apart and exactly, each row with its
//! PID; one that runs another program told and skipped; every probe gone from every one of them
//! at the end. Without the flag, only the traced process, and the children told of.
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

/// "PID <pid> <role>" lines the workload's processes print.
fn roles(stdout: &str) -> HashMap<String, u64> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("PID ")?.split_whitespace();
            let pid = w.next()?.parse().ok()?;
            Some((w.next()?.to_string(), pid))
        })
        .collect()
}

/// Calls of `work` per PID in a pycount JSON report.
fn work_calls(report: &serde_json::Value) -> HashMap<u64, u64> {
    let mut calls = HashMap::new();
    for f in report["functions"].as_array().unwrap() {
        if f["name"] == "work" {
            let pid = f["pid"]
                .as_u64()
                .expect("a pid in every row under --subprocesses");
            *calls.entry(pid).or_default() += f["count"].as_u64().unwrap();
        }
    }
    calls
}

fn count_forking_workers(flags: &[&str]) -> Ran {
    let mut args = vec![
        "count",
        "--json",
        "--filter",
        "work",
        "--filter",
        "work_batch",
    ];
    args.extend(flags);
    Pyprobe::new(&args)
        .spawn(Workload::script("forking_workers.py"))
        .run_with_go()
}

#[test]
fn subprocesses_counts_every_forked_process_exactly_with_its_pid() {
    let Ran { stdout, stderr, ok } = count_forking_workers(&["--subprocesses"]);
    assert!(ok, "{stderr}");
    let roles = roles(&stdout);
    let report = last_json(&stdout);
    let calls = work_calls(&report);
    let parent = banner_pid(&stderr) as u64;
    assert_eq!(roles["parent"], parent);
    // The pool's two batches may run in one worker or in two.
    let mut expected: HashMap<u64, u64> = HashMap::new();
    for (role, n) in [
        ("parent", 3),
        ("child5", 5),
        ("child7", 7),
        ("grandchild", 11),
        ("batch13", 13),
        ("batch17", 17),
    ] {
        *expected.entry(roles[role]).or_default() += n;
    }
    assert_eq!(calls, expected, "{report}\n{stdout}\n{stderr}");
    // work_batch: once per batch, in the worker that ran it.
    let batches: u64 = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "work_batch")
        .map(|f| {
            assert!([roles["batch13"], roles["batch17"]].contains(&f["pid"].as_u64().unwrap()));
            f["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(batches, 2);
    assert!(
        stderr.contains(&format!(
            "pyprobe: 6 processes forked from PID {parent} during the session, traced \
             (--subprocesses); 1 of them ran another program (exec) and was not followed from there"
        )),
        "{stderr}"
    );
}

#[test]
fn without_the_flag_only_the_traced_process_is_counted_and_the_children_told() {
    let Ran { stdout, stderr, ok } = count_forking_workers(&[]);
    assert!(ok, "{stderr}");
    let report = last_json(&stdout);
    let rows: Vec<_> = report["functions"].as_array().unwrap().clone();
    assert!(rows.iter().all(|f| f.get("pid").is_none()), "{report}");
    let work: Vec<u64> = rows
        .iter()
        .filter(|f| f["name"] == "work")
        .map(|f| f["count"].as_u64().unwrap())
        .collect();
    assert_eq!(work, [3], "{report}");
    let parent = banner_pid(&stderr);
    assert!(
        stderr.contains(&format!(
            "pyprobe: 6 processes forked from PID {parent} during the session, not traced"
        )),
        "{stderr}"
    );
}

#[test]
fn the_text_table_gets_a_pid_column_only_when_following() {
    let Ran { stdout, stderr, ok } = Pyprobe::new(&["count", "--filter", "work", "--subprocesses"])
        .spawn(Workload::script("forking_workers.py"))
        .run_with_go();
    assert!(ok, "{stderr}");
    let roles = roles(&stdout);
    assert!(
        stdout.contains("     PID      CALLS  FUNCTION\n"),
        "{stdout}"
    );
    let row = format!("{:>8} {:>10}  ", roles["grandchild"], 11);
    assert!(stdout.contains(&row), "{row:?} in\n{stdout}");
    let stdout = Pyprobe::new(&["count", "--filter", "work"])
        .spawn(Workload::script("forking_workers.py"))
        .run_with_go()
        .stdout;
    assert!(stdout.contains("\n     CALLS  FUNCTION\n"), "{stdout}");
}

/// Kills the given processes on drop (the workload's children, which outlive the session).
struct Reaper(Vec<i32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: a plain kill(2) of a process this test's workload forked.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn children_that_outlive_the_session_keep_no_probe_and_no_raised_semaphore() {
    let g = Pyprobe::new(&[
        "count",
        "--json",
        "--latency",
        "--subprocesses",
        "--filter",
        "work",
        "-d",
        "3",
    ])
    .spawn(Workload::script("forked_sleepers.py"))
    .launch();
    let pyprobe_pid = g.pid();
    let out = g.wait_output(Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Processes sharing one pipe: a line may hold two writes.
    let pids: HashMap<u64, u64> = stdout
        .split("PID ")
        .skip(1)
        .filter_map(|s| {
            let mut w = s
                .split(|c: char| !c.is_ascii_digit())
                .filter(|w| !w.is_empty());
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect();
    let _reaper = Reaper(pids.keys().map(|&p| p as i32).collect());
    assert_eq!(pids.len(), 3, "{stdout}\n{stderr}");
    let calls = work_calls(&last_json(&stdout));
    assert_eq!(calls, pids, "{stdout}\n{stderr}");
    // The parent was stopped with the session; the children live on, untouched.
    let children: Vec<i32> = pids
        .iter()
        .filter(|(_, n)| **n != 2)
        .map(|(&p, _)| p as i32)
        .collect();
    assert_eq!(children.len(), 2);
    for pid in children {
        let raised: Vec<_> = semaphores(pid)
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
        assert!(raised.is_empty(), "PID {pid} keeps {raised:?}");
    }
    // No trace event of this pyprobe is left defined.
    let events = std::fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap();
    assert!(
        !events.contains(&format!("pyprobe/p{pyprobe_pid}_")),
        "{events}"
    );
}
