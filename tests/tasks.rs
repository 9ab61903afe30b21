//! pyprobe tasks on real processes: task_tree.py's known tree (a TaskGroup, or a gather before
//! 3.11, of three named workers: one awaiting gather of two named sub-tasks, one on a queue, one
//! asleep) read exactly, names, states, coroutine chains with their lines and the tree, on
//! Debian's 3.11, pyenv's 3.8, 3.10, 3.12 and 3.13 and sid's 3.13-3.15; bad input in one line.
//! A live aiohttp service (from PyPI) under load shows exactly its requests stuck on purpose.
mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// The line of task_tree.py marked `# L:<mark>`.
fn line_of(mark: &str) -> i64 {
    l_line("task_tree.py", mark)
}

/// The line of a script marked `# L:<mark>`.
fn l_line(script_name: &str, mark: &str) -> i64 {
    marked_line(script_name, &format!("# L:{mark}")) as i64
}

fn start_tree(py: &Python) -> (Guard, String) {
    let path = py.script("task_tree.py");
    (Workload::path(&path).on(py).ready(), path)
}

fn tasks_json(pid: i32) -> Value {
    Pyprobe::new(&["tasks", "--pid", &pid.to_string(), "--json"]).json()
}

fn task<'a>(doc: &'a Value, name: &str) -> &'a Value {
    element_where(&doc["tasks"], "name", name).unwrap_or_else(|| panic!("no task {name} in {doc}"))
}

fn names(doc: &Value, ids: &Value) -> Vec<String> {
    ids.as_array()
        .unwrap()
        .iter()
        .map(|id| {
            doc["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| &t["id"] == id)
                .map(|t| t["name"].as_str().unwrap().to_string())
                .unwrap_or_else(|| format!("{id}"))
        })
        .collect()
}

/// A task's coroutines, innermost first: (name, line) in task_tree.py, and the names of the
/// others (asyncio's own, whose lines differ per version).
fn chain(t: &Value, script: &str) -> Vec<(String, i64)> {
    t["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let line = if f["file"] == script {
                f["line"].as_i64().unwrap()
            } else {
                0
            };
            (f["name"].as_str().unwrap().to_string(), line)
        })
        .collect()
}

fn c(name: &str, line: i64) -> (String, i64) {
    (name.to_string(), line)
}

/// The whole known tree, as JSON; `group`: a TaskGroup (3.11+), else a gather.
fn assert_tree(py: &Python, group: bool) {
    let (guard, script) = start_tree(py);
    let doc = tasks_json(guard.pid());
    let mut all: Vec<&str> = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    all.sort();
    assert_eq!(
        all,
        [
            "Task-1", "consumer", "gatherer", "sleeper", "sub-a", "sub-b"
        ],
        "{doc}"
    );
    let sleep = || c("sleep", 0);
    for sub in ["sub-a", "sub-b"] {
        let t = task(&doc, sub);
        assert_eq!(t["state"], "awaiting a Future");
        assert_eq!(chain(t, &script), [sleep(), c("sub", line_of("sub"))]);
        assert_eq!(names(&doc, &t["awaited_by"]), ["gatherer"]);
        assert_eq!(names(&doc, &t["awaits"]), Vec::<String>::new());
    }
    let g = task(&doc, "gatherer");
    assert_eq!(g["state"], "awaiting gather(sub-a, sub-b)");
    assert_eq!(chain(g, &script), [c("gatherer", line_of("gatherer"))]);
    assert_eq!(names(&doc, &g["awaits"]), ["sub-a", "sub-b"]);
    let q = task(&doc, "consumer");
    assert_eq!(q["state"], "awaiting a Future");
    let get = if py.exe.contains("3.8") || py.exe.contains("3.10") {
        "get"
    } else {
        "Queue.get"
    };
    assert_eq!(
        chain(q, &script),
        [c(get, 0), c("consumer", line_of("consumer"))]
    );
    let s = task(&doc, "sleeper");
    assert_eq!(s["state"], "awaiting a Future");
    assert_eq!(
        chain(s, &script),
        [sleep(), c("sleeper", line_of("sleeper"))]
    );
    let main = task(&doc, "Task-1");
    let workers = ["consumer", "gatherer", "sleeper"];
    // In the order they were made (3.14+) or of their names.
    let mut awaited = names(&doc, &main["awaits"]);
    awaited.sort();
    assert_eq!(awaited, workers);
    assert_eq!(main["awaited_by"], serde_json::json!([]));
    for w in workers {
        assert_eq!(names(&doc, &task(&doc, w)["awaited_by"]), ["Task-1"]);
    }
    let outer = chain(main, &script);
    if group {
        // In the TaskGroup's __aexit__ (3.13.x later: its _aexit too), awaiting its own future.
        assert_eq!(main["state"], "awaiting a Future");
        assert_eq!(outer.last(), Some(&c("main", line_of("main"))));
        assert!(outer.contains(&c("TaskGroup.__aexit__", 0)), "{outer:?}");
    } else {
        assert_eq!(
            main["state"],
            "awaiting gather(gatherer, consumer, sleeper) and 1 done"
        );
        assert_eq!(outer, [c("main", line_of("main-gather"))]);
    }
    assert_eq!(doc["cycles"], serde_json::json!([]));
    assert!(!doc["cannot_show"].as_array().unwrap().is_empty());
    assert!(doc["read_ms"].as_f64().unwrap() < 1000.0);
}

/// `assert_tree` on each of `pys` in turn, which `group` (a TaskGroup, 3.11+) or a gather.
fn assert_trees(pys: &[Python], group: bool) {
    for py in pys {
        assert_tree(py, group);
    }
}

tests_of!(assert_trees {
    debian_311_tree: (&[Python::debian()], true);
    pyenv_312_313_tree: (&[Python::pyenv("3.12"), Python::pyenv("3.13")], true);
    pyenv_38_310_tree: (&[Python::pyenv("3.8"), Python::pyenv("3.10")], false);
    sid_313_tree: (&[Python::sid("3.13")], true);
    /// 3.14+: the tasks found through the build's AsyncioDebug offsets (its per-thread lists).
    sid_314_315_tree: (&[Python::sid("3.14"), Python::sid("3.15")], true);
});

/// The text tree as pstree draws it, on Debian's 3.11 (asyncio's own lines from its files).
#[test]
fn debian_311_text_tree_and_table() {
    let (guard, script) = start_tree(&Python::debian());
    let pid = guard.pid().to_string();
    let out = Pyprobe::new(&["tasks", "--pid", &pid]).run();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lib = "/usr/lib/python3.11/asyncio";
    let aexit = line_in(
        &format!("{lib}/taskgroups.py"),
        "await self._on_completed_fut",
    );
    let sleep = line_in(&format!("{lib}/tasks.py"), "return await future");
    let get = line_in(&format!("{lib}/queues.py"), "await getter");
    let l = line_of;
    let want = format!(
        "\
└── (T) Task-1
    └──  main {script}:{}
        └──  TaskGroup.__aexit__ {lib}/taskgroups.py:{aexit}
            ├── (T) consumer
            │   └──  consumer {script}:{}
            │       └──  Queue.get {lib}/queues.py:{get}
            ├── (T) gatherer
            │   └──  gatherer {script}:{}
            │       ├── (T) sub-a
            │       │   └──  sub {script}:{}
            │       │       └──  sleep {lib}/tasks.py:{sleep}
            │       └── (T) sub-b
            │           └──  sub {script}:{}
            │               └──  sleep {lib}/tasks.py:{sleep}
            └── (T) sleeper
                └──  sleeper {script}:{}
                    └──  sleep {lib}/tasks.py:{sleep}
",
        l("main"),
        l("consumer"),
        l("gatherer"),
        l("sub"),
        l("sub"),
        l("sleeper"),
    );
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    assert!(
        head.starts_with(&format!(
            "PID {pid} (Python 3.11.2): 6 asyncio tasks (read in "
        )),
        "{head}"
    );
    let tree: Vec<&str> = lines.by_ref().take(want.lines().count()).collect();
    assert_eq!(tree.join("\n") + "\n", want, "{text}");
    let rest: Vec<&str> = lines.collect();
    assert!(
        rest.iter()
            .all(|l| l.starts_with("not seen on Python 3.11.2: ")),
        "{rest:?}"
    );
    assert_eq!(rest.len(), 2, "{text}");

    let out = Pyprobe::new(&["tasks", "--pid", &pid, "--table"]).run();
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(2)
        .take(6)
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    let cells = |r: &Vec<&str>| r[1..].join("|");
    assert_eq!(
        rows.iter().map(cells).collect::<Vec<_>>(),
        [
            "Task-1|awaiting a Future|TaskGroup.__aexit__ <- main",
            "consumer|awaiting a Future|Queue.get <- consumer|Task-1",
            "gatherer|awaiting gather(sub-a, sub-b)|gatherer|Task-1",
            "sleeper|awaiting a Future|sleep <- sleeper|Task-1",
            "sub-a|awaiting a Future|sleep <- sub|gatherer",
            "sub-b|awaiting a Future|sleep <- sub|gatherer",
        ],
        "{text}"
    );
}

/// The 1-based line of the first line of a file holding `needle`.
fn line_in(file: &str, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {file}"))
        + 1
}

#[test]
fn a_process_without_asyncio_says_so_in_one_line() {
    let guard = Workload::code("import time; print('ready', flush=True); time.sleep(60)").ready();
    let pid = guard.pid().to_string();
    let out = Pyprobe::new(&["tasks", "--pid", &pid]).run();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("PID {pid} (Python 3.11.2) has not imported asyncio: no tasks\n")
    );
    let doc = tasks_json(guard.pid());
    assert_eq!(doc["asyncio_loaded"], false);
    assert_eq!(doc["tasks"], serde_json::json!([]));
}

#[test]
fn bad_input_is_one_line() {
    let guard = Workload::command(Command::new("sleep")).args(&["60"]).raw();
    // Past its exec.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = guard.pid().to_string();
    assert_clean_failure(&["tasks", "--pid", &pid], "is not a Python process");
    assert_clean_failure(&["tasks", "--pid", "2147483647"], "no process with PID");
    // A version without a task layout (bullseye's 3.9) says which, and what works there.
    let (guard, _) = start_tree(&Python::bullseye());
    let pid = guard.pid().to_string();
    assert_clean_failure(
        &["tasks", "--pid", &pid],
        &format!(
            "(CPython 3.9): pyprobe reads asyncio tasks on CPython 3.8 and 3.10-3.15, not this \
             version; pyprobe stacks --pid {pid} works"
        ),
    );
}

/// 3.14: the same tree as CPython's own `python3.14 -m asyncio pstree PID` draws, run inside
/// the chroot on the same process (in a mount namespace of its own, with /proc mounted there,
/// which pstree reads; the host's mounts are left as they are).
#[test]
fn sid_314_same_tree_as_asyncio_pstree() {
    let py = Python::sid("3.14");
    let inside = py.script("task_tree.py");
    let out_inside = format!("{inside}.out");
    let root = py.root.unwrap();
    let shell = format!(
        "mount -t proc proc {root}/proc || exit 9
         chroot {root} /usr/bin/python3.14 {inside} > {root}{out_inside} & pid=$!
         for i in $(seq 100); do grep -q ready {root}{out_inside} && break; sleep 0.1; done
         chroot {root} /usr/bin/python3.14 -m asyncio pstree $pid || echo pstree failed
         echo '=== pyprobe'
         {} tasks --pid $pid || echo pyprobe failed
         kill $pid",
        pyprobe_bin()
    );
    let out = Guard::spawn(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &shell])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
    .wait_output(std::time::Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    let (theirs, ours) = text
        .split_once("=== pyprobe\n")
        .unwrap_or_else(|| panic!("{text}{}", String::from_utf8_lossy(&out.stderr)));
    assert!(theirs.starts_with("└── (T) Task-1\n"), "{text}");
    assert_eq!(theirs.lines().count(), 18, "{text}");
    let ours: Vec<&str> = ours
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("not seen on"))
        .collect();
    assert_eq!(ours.join("\n") + "\n", theirs, "{text}");
}

/// Tasks made and ended all the time while they are read: the steady tasks are all there with
/// their edges, the process is held still at most briefly (or, when a read takes longer than
/// pyprobe holds a process, not at all, and said), and it runs on afterwards.
#[test]
fn a_busy_loop_is_read_and_let_go() {
    for n in ["100", "1000"] {
        let guard = Workload::script("task_churn.py").args(&[n]).ready();
        for _ in 0..3 {
            let doc = tasks_json(guard.pid());
            let n: usize = n.parse().unwrap();
            let steady: Vec<&Value> = doc["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| {
                    let name = t["name"].as_str().unwrap();
                    name.starts_with("mid-") || name.starts_with("leaf-")
                })
                .collect();
            assert_eq!(steady.len(), n, "{doc}");
            let mid = task(&doc, "mid-3");
            let leaves: Vec<String> = (0..9).map(|j| format!("leaf-3-{j}")).collect();
            assert_eq!(names(&doc, &mid["awaits"]), leaves);
            assert_eq!(doc["error"], Value::Null);
            // Held still, or said to have moved: never both.
            assert!(doc["paused"] != true || doc["moved_ms"].is_null(), "{doc}");
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", guard.pid())).unwrap();
        let state = stat.rsplit_once(") ").unwrap().1.chars().next().unwrap();
        assert!(matches!(state, 'R' | 'S'), "left in state {state}");
    }
}

/// One HTTP/1.1 request on a fresh connection: the stream, the request sent.
fn request(port: u16, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s
}

/// aiohttp (PyPI, in scripts/test's venv) serving /fast to four clients in a loop while five
/// requests to /stuck/N wait on a backend that never answers: `tasks` shows exactly five
/// request tasks stuck in wait_for_backend (awaited by aiohttp's connection tasks), with the
/// right lines, read after read, and the service answers all along.
#[test]
fn a_live_aiohttp_service_under_load_shows_its_stuck_requests() {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let app = script("aiohttp_app.py");
    let port = agent::free_port();
    let guard = Workload::path(&app)
        .on(&Python::at(readers::python()))
        .args(&[&port.to_string()])
        .ready();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut body = String::new();
                    request(port, "/fast").read_to_string(&mut body).unwrap();
                    assert!(body.ends_with("ok\n"), "{body}");
                    served.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let _stuck: Vec<_> = (0..5)
        .map(|n| request(port, &format!("/stuck/{n}")))
        .collect();

    let want = [
        c("Event.wait", 0),
        c("wait_for_backend", l_line("aiohttp_app.py", "backend")),
        c("stuck", l_line("aiohttp_app.py", "stuck")),
    ];
    let stuck_tasks = |doc: &Value| -> Vec<Value> {
        doc["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| chain(t, &app).iter().any(|(name, _)| name == "stuck"))
            .cloned()
            .collect()
    };
    // The five requests reach their handler soon after they are sent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut doc = tasks_json(guard.pid());
    while stuck_tasks(&doc).len() < 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        doc = tasks_json(guard.pid());
    }
    for read in 0..5 {
        if read > 0 {
            doc = tasks_json(guard.pid());
        }
        let before = served.load(Ordering::Relaxed);
        let stuck = stuck_tasks(&doc);
        assert_eq!(stuck.len(), 5, "{doc}");
        for t in &stuck {
            assert_eq!(chain(t, &app)[..3], want[..], "{t}");
            // aiohttp's connection task (RequestHandler.start) awaits each request's task.
            let parents = t["awaited_by"].as_array().unwrap();
            assert_eq!(parents.len(), 1, "{t}");
            let parent = doc["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["id"] == parents[0])
                .unwrap_or_else(|| panic!("no parent of {t}"));
            assert_eq!(
                parent["frames"][0]["name"], "RequestHandler.start",
                "{parent}"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            served.load(Ordering::Relaxed) > before,
            "the service stopped answering"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(served.load(Ordering::Relaxed) > 50);
}

/// tasks loads no BPF: an ordinary user reads their own asyncio process as root reads it, and
/// `pyprobe probes` says tasks works there.
#[test]
fn an_ordinary_user_reads_their_own_tasks() {
    let mut cmd = as_nobody(PYTHON);
    cmd.arg(script("task_tree.py"));
    let guard = Workload::command(cmd).ready();
    let pid = guard.pid().to_string();
    let out = output_ok(as_nobody(pyprobe_bin()).args(["tasks", "--pid", &pid, "--json"]));
    let mine: Value = serde_json::from_slice(&out.stdout).expect("tasks JSON");
    let root = tasks_json(guard.pid());
    assert_eq!(mine["tasks"].as_array().unwrap().len(), 6, "{mine}");
    assert_eq!(mine["tasks"], root["tasks"]);
    let probes = as_nobody(pyprobe_bin())
        .args(["probes", "--pid", &pid])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probes.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("pyprobe tasks "))
        .unwrap_or_else(|| panic!("no tasks row in {text}"));
    assert!(row.contains(" yes "), "{row}");
}
