//! What a command pyprobe starts gets: the user it was asked to run as (`--user`), and its own
//! exit status handed back as pyprobe's, like `time` and `strace`; and the processes it forks,
//! told of. Scratch files live in a TempDir, world-readable (the user may not read the checkout).
mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Says who it runs as on stderr, calls f() 7 times, and exits with the status it is given.
const WHOAMI: &str = r#"
import json, os, sys
def f():
    return 1
for _ in range(7):
    f()
print("ids:", json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
      "groups": sorted(os.getgroups()), "home": os.environ.get("HOME"),
      "user": os.environ.get("USER")}), file=sys.stderr, flush=True)
sys.exit(int(sys.argv[1]))
"#;

fn run(args: &[&str]) -> std::process::Output {
    Pyprobe::new(args).within(Duration::from_secs(60))
}

fn ids(stderr: &str) -> Value {
    json_after(stderr, "ids: ")
}

#[test]
fn a_command_runs_as_the_user_given_and_is_traced_exactly() {
    let dir = TempDir::new("user");
    let script = dir.write("whoami.py", WHOAMI);
    let report = dir.path().join("report.json");
    let report_path = report.to_string_lossy().into_owned();
    let out = run(&[
        "count",
        "--user",
        "nobody",
        "--filter",
        "f",
        "--json",
        "-o",
        &report_path,
        "--",
        PYTHON,
        &script,
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let nobody = pyprobe::session::run_as::RunAs::lookup("nobody").unwrap();
    let got = ids(&stderr);
    assert_eq!(got["uid"], nobody.uid, "{got}");
    assert_eq!(got["euid"], nobody.uid, "{got}");
    assert_eq!(got["gid"], nobody.gid, "{got}");
    // No group of root's survives: only the user's own.
    let mut groups = nobody.groups.clone();
    groups.sort();
    groups.dedup();
    assert_eq!(got["groups"], serde_json::json!(groups), "{got}");
    assert_eq!(got["home"], nobody.home.as_str());
    assert_eq!(got["user"], "nobody");
    // Traced all the same, from its first call.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let counts = counts_by_name(&report, "/whoami.py");
    assert_eq!(counts, vec![("f".to_string(), 3, 7)], "{report}");
}

#[test]
fn without_user_a_command_runs_as_root() {
    let dir = TempDir::new("root");
    let script = dir.write("whoami.py", WHOAMI);
    let out = run(&["count", "--filter", "f", "--", PYTHON, &script, "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(ids(&stderr)["uid"], 0);
}

#[test]
fn pyprobe_exits_with_the_status_of_the_command_it_started() {
    let dir = TempDir::new("status");
    let script = dir.write("whoami.py", WHOAMI);
    for status in [0, 3, 42] {
        let out = run(&["count", "--", PYTHON, &script, &status.to_string()]);
        assert_eq!(out.status.code(), Some(status), "{out:?}");
        // The report is still written.
        assert!(String::from_utf8_lossy(&out.stdout).contains("CALLS"));
    }
    // A command killed by a signal: 128 + its number, as shells say.
    let out = run(&[
        "count",
        "--",
        PYTHON,
        "-c",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    ]);
    assert_eq!(out.status.code(), Some(128 + 9), "{out:?}");
}

#[test]
fn a_command_that_pyprobe_stops_leaves_pyprobe_successful() {
    // The session's end (--duration) stops the command; pyprobe did what it was asked.
    let out = run(&[
        "count",
        "--duration",
        "0.5",
        "--",
        PYTHON,
        "-c",
        "import time; time.sleep(60)",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn user_is_refused_for_a_pid_and_for_an_unknown_name() {
    assert_clean_failure(
        &["count", "--user", "nobody", "--pid", "1"],
        "--user is for a command",
    );
    assert_clean_failure(
        &[
            "count",
            "--user",
            "no-such-user-here",
            "--",
            PYTHON,
            "-c",
            "1",
        ],
        "--user no-such-user-here: no such user",
    );
}

/// Forks two children, one of which forks a grandchild, and starts a thread (not a process).
const FORKER: &str = r#"
import os, threading
def f():
    return 1
threading.Thread(target=f).start()
for i in range(2):
    pid = os.fork()
    if pid == 0:
        if i == 1:
            g = os.fork()
            if g == 0:
                os._exit(0)
            os.waitpid(g, 0)
        os._exit(0)
    os.waitpid(pid, 0)
"#;

#[test]
fn processes_forked_from_the_traced_one_are_told_not_silently_missing() {
    let dir = TempDir::new("fork");
    let script = dir.write("forker.py", FORKER);
    let out = run(&["count", "--", PYTHON, &script]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let pid = banner_pid(&stderr);
    assert!(
        stderr.contains(&format!(
            "pyprobe: 3 processes forked from PID {pid} during the session, not traced"
        )),
        "{stderr}"
    );
    // A process that forks nothing gets no such line.
    let out = run(&[
        "count",
        "--",
        PYTHON,
        "-c",
        "import threading; threading.Thread(target=print).start()",
    ]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("forked"));
}
