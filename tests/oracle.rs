//! pycount against an independent oracle: cProfile's exact per-function counts for the same
//! deterministic standard-library work (json, difflib, textwrap, fractions).
mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;

/// Files whose functions the work uses and that interpreter start-up and shutdown do not touch.
const LIBRARY_FILES: &[&str] = &[
    "json/encoder.py",
    "json/decoder.py",
    "json/__init__.py",
    "difflib.py",
    "textwrap.py",
    "fractions.py",
];

#[test]
fn pycount_matches_cprofile_on_standard_library_work() {
    let out = output_ok(Command::new(PYTHON).args([&script("stdlib_work.py"), "--profile"]));
    let oracle: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let key = |f: &serde_json::Value| {
        (
            f["file"].as_str().unwrap().to_string(),
            f["line"].as_u64().unwrap(),
            f["name"].as_str().unwrap().to_string(),
        )
    };
    let in_library = |file: &str| LIBRARY_FILES.iter().any(|l| file.ends_with(l));
    let want: BTreeMap<_, u64> = oracle
        .iter()
        .filter(|f| in_library(f["file"].as_str().unwrap()))
        .map(|f| (key(f), f["count"].as_u64().unwrap()))
        .collect();
    assert!(
        want.len() >= 20,
        "the work exercises many library functions: {want:?}"
    );
    let shared_names = want.keys().map(|k| &k.2).collect::<Vec<_>>();
    let dup = shared_names
        .iter()
        .filter(|n| shared_names.iter().filter(|m| m == n).count() > 1)
        .count();
    assert!(dup > 0, "the oracle includes functions that share a name");

    let mut args = vec!["count".to_string()];
    for f in LIBRARY_FILES {
        args.push("--filter".into());
        args.push(format!("{f}:*"));
    }
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--json");
    let report = Pyprobe::new(&args)
        .trace(Workload::script("stdlib_work.py"))
        .report();
    let got: BTreeMap<_, u64> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (key(f), f["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, want);
}

/// pyperformance's benchmark programs, fetched by scripts/test from PyPI (pinned version).
fn pyperformance_benchmark(name: &str) -> String {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/pyperformance/pyperformance/data-files/benchmarks")
        .join(format!("bm_{name}/run_benchmark.py"));
    assert!(
        p.exists(),
        "{} missing: scripts/test fetches pyperformance",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

/// Calls per function of one file, keyed by (def line, name).
type CountsByDef = BTreeMap<(u64, String), u64>;

/// One benchmark's work on one interpreter, run twice: under cProfile (its per-function rows,
/// each with `line`, `name`, `count`), and traced by `pyprobe count --pid PID --json ARGS`
/// (its report and what it said on stderr).
fn cprofile_and_pycount(
    py: &Python,
    bench: &str,
    expr: &str,
    pyprobe_args: &[&str],
) -> (Vec<serde_json::Value>, serde_json::Value, String) {
    let file = py.file(
        &pyperformance_benchmark(bench),
        &format!("bm_{bench}/run_benchmark.py"),
    );
    let driver = py.script("pyperformance_driver.py");
    let out = output_ok(&mut py.command_with(&driver, &[&file, expr, "--profile"]));
    let oracle: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();

    let w = Workload::path(&driver).on(py).args(&[&file, expr]).ready();
    let pid = w.pid().to_string();
    let mut args = vec!["count", "--pid", &pid, "--json"];
    args.extend(pyprobe_args);
    let p = Pyprobe::new(&args).start();
    w.release("go", std::time::Duration::from_secs(120));
    let (stdout, stderr) = p.finish();
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}\n{stderr}"));
    (oracle, report, stderr)
}

/// cProfile's and pycount's per-function counts for one benchmark's work on one interpreter.
fn both_counts(py: &Python, bench: &str, expr: &str) -> (CountsByDef, CountsByDef) {
    let filter = format!("bm_{bench}/run_benchmark.py:*");
    let (oracle, report, _) = cprofile_and_pycount(py, bench, expr, &["--filter", &filter]);
    let key = |f: &serde_json::Value| {
        (
            f["line"].as_i64().unwrap() as u64,
            f["name"].as_str().unwrap().to_string(),
        )
    };
    let want = oracle
        .iter()
        .map(|f| (key(f), f["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(report["lost"]["functions_full"], 0);
    let got = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (key(f), f["count"].as_u64().unwrap()))
        .collect();
    (want, got)
}

tests_of!(matches_cprofile_on_pyperformance_programs {
    pycount_matches_cprofile_on_pyperformance_programs: (&Python::debian());
    pycount_matches_cprofile_on_pyperformance_programs_on_3_12:
        (&Python::pyenv("3.12").with_trampoline());
    pycount_matches_cprofile_on_pyperformance_programs_on_3_14:
        (&Python::sid("3.14").with_trampoline());
});

/// Six programs with dozens of functions sharing a name in one file (`__init__`, `execute`).
fn matches_cprofile_on_pyperformance_programs(py: &Python) {
    let mut shared_names = 0;
    for (bench, expr) in [
        ("richards", "Richards().run(1)"),
        ("deltablue", "delta_blue(100)"),
        ("go", "versus_cpu()"),
        ("nqueens", "bench_n_queens(6)"),
        ("float", "benchmark(2000)"),
        ("raytrace", "bench_raytrace(1, 20, 20, None)"),
    ] {
        let (want, got) = both_counts(py, bench, expr);
        assert!(
            want.len() >= 5,
            "{bench}: the oracle saw {} functions",
            want.len()
        );
        let names: Vec<&String> = want.keys().map(|k| &k.1).collect();
        shared_names += names
            .iter()
            .filter(|n| names.iter().filter(|m| m == n).count() > 1)
            .count();
        assert_eq!(got, want, "{bench}: pycount vs cProfile");
    }
    assert!(
        shared_names > 10,
        "these programs have many functions sharing a name in one file"
    );
}

/// `--max-overhead 20` on richards, which pycount slows about tenfold: the first or second
/// per-second estimate stops the session, what was counted until then is reported, and richards
/// runs on with no probe left in it (its code as in the file, its semaphores at 0).
#[test]
fn max_overhead_stops_pycount_on_richards_within_two_seconds() {
    let py = Python::debian();
    let file = pyperformance_benchmark("richards");
    let driver = py.script("pyperformance_driver.py");
    let mut w = Workload::path(&driver)
        .on(&py)
        .args(&[&file, "Richards().run(1)", "--forever"])
        .ready();
    w.send_line("go");
    let pid = w.pid();
    let pid_s = pid.to_string();
    let p = Pyprobe::new(&["count", "--pid", &pid_s, "--json", "--max-overhead", "20"]).start();
    // Live: the return probe's breakpoint is in richards' code (the first estimate is a
    // second away).
    assert_eq!(uprobes_in(pid), ["function__return"]);
    let (stdout, stderr) = p.finish();
    let stop = stderr
        .lines()
        .find(|l| l.starts_with("pyprobe: stopping"))
        .unwrap_or_else(|| panic!("no stop:\n{stderr}"));
    let (after, why) = stop
        .strip_prefix("pyprobe: stopping after ")
        .and_then(|s| s.split_once(" s: "))
        .unwrap_or_else(|| panic!("{stop}"));
    assert!(
        ["1", "2"].contains(&after),
        "stopped after {after} s: {stderr}"
    );
    assert!(
        why.starts_with(&format!(
            "tracing costs PID {pid} more than --max-overhead 20%: "
        )) && why.ends_with("; what was recorded until now follows"),
        "{stop}"
    );
    // The estimate that stopped it was told first.
    assert!(
        stderr.contains(&format!("pyprobe: PID {pid} spends ")),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}\n{stderr}"));
    let counted: Vec<&str> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["file"]
                .as_str()
                .unwrap()
                .ends_with("bm_richards/run_benchmark.py")
                && f["count"].as_u64().unwrap() > 0
        })
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in ["schedule", "runTask", "findtcb", "qpkt", "fn"] {
        assert!(counted.contains(&name), "{name} not counted: {counted:?}");
    }
    assert!(w.alive(), "richards ended: {stderr}");
    assert_eq!(uprobes_in(pid), Vec::<String>::new());
    assert!(
        semaphores(pid).iter().all(|(_, v)| *v == 0),
        "{:?}",
        semaphores(pid)
    );
}

/// bpftrace, an independent tracer, counting the same returns by (file, name) in the same run.
#[test]
fn pycount_agrees_with_bpftrace_on_the_same_process() {
    let bpftrace = ["/usr/bin/bpftrace", "/usr/sbin/bpftrace"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("bpftrace (scripts/test installs it)");
    let w = Workload::script("known_calls.py").ready();
    let pid = w.pid();
    let program = format!(
        "usdt:{PYTHON}:python:function__return /pid == {pid}/ {{ @[str(arg0), str(arg1)] = count(); }}"
    );
    let mut bt = Guard::spawn(
        Command::new(bpftrace)
            .args(["-p", &pid.to_string(), "-e", &program])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    let target = pyprobe::target::Target::from_pid(pid).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while target.semaphore_value("function__return") != Some(1) {
        assert!(
            std::time::Instant::now() < deadline && bt.alive(),
            "bpftrace did not attach"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid_s = pid.to_string();
    let p = Pyprobe::new(&["count", "--pid", &pid_s, "--json"]).start();
    // One uprobe per probe site however many tracers share it: the semaphore stays at 1.
    assert_eq!(target.semaphore_value("function__return"), Some(1));
    w.release("go", std::time::Duration::from_secs(60));
    let (stdout, _) = p.finish();
    let bt_out =
        String::from_utf8_lossy(&bt.wait_output(std::time::Duration::from_secs(30)).stdout)
            .into_owned();

    // bpftrace prints `@[FILE, NAME]: COUNT`; it cannot tell same-named functions apart, so
    // pycount's rows are summed by (file, name) for the comparison.
    let mut theirs: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in bt_out.lines().filter(|l| l.starts_with("@[")) {
        let (k, v) = line.rsplit_once("]: ").unwrap();
        let (f, n) = k.trim_start_matches("@[").split_once(", ").unwrap();
        theirs.insert((f.to_string(), n.to_string()), v.trim().parse().unwrap());
    }
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let mut ours: BTreeMap<(String, String), u64> = BTreeMap::new();
    for f in report["functions"].as_array().unwrap() {
        if f["name_truncated"] == true || f["file_truncated"] == true {
            continue;
        }
        let k = (
            f["file"].as_str().unwrap().to_string(),
            f["name"].as_str().unwrap().to_string(),
        );
        *ours.entry(k).or_default() += f["count"].as_u64().unwrap();
    }
    theirs.retain(|(_, n), _| n.len() < 63);
    let mine = script("known_calls.py");
    assert!(
        theirs.get(&(mine.clone(), "fib".to_string())) == Some(&21891),
        "{theirs:?}"
    );
    assert_eq!(ours.get(&(mine, "__init__".to_string())), Some(&51));
    assert_eq!(ours, theirs);
}

/// richards' methods and function a `--filter` names (methods by Class.method), by def line.
const RICHARDS_WATCHED: &[(&str, u64)] = &[
    ("Task.runTask", 206),
    ("HandlerTask.fn", 280),
    ("Packet.append_to", 43),
    ("TaskState.isTaskHoldingOrWaiting", 139),
];

/// pycount's default source for four exact names by --pid is the watchpoint source: its counts
/// of richards' work equal cProfile's ncalls for the same functions.
fn watch_matches_cprofile_on_richards(py: &Python) {
    let mut args = Vec::new();
    for (name, _) in RICHARDS_WATCHED {
        args.extend(["--filter", name]);
    }
    let (oracle, report, stderr) = cprofile_and_pycount(py, "richards", "Richards().run(1)", &args);
    let lines: Vec<u64> = RICHARDS_WATCHED.iter().map(|w| w.1).collect();
    let want: BTreeMap<u64, u64> = oracle
        .iter()
        .map(|f| (f["line"].as_u64().unwrap(), f["count"].as_u64().unwrap()))
        .filter(|(l, _)| lines.contains(l))
        .collect();
    assert_eq!(want.len(), 4, "cProfile saw them all: {want:?}");
    assert!(want.values().all(|&n| n > 100), "{want:?}");
    assert!(
        stderr.contains("hardware watchpoints on 4 functions"),
        "{stderr}"
    );
    let got: BTreeMap<u64, u64> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["line"].as_u64().unwrap(), f["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, want, "pycount on watchpoints vs cProfile:\n{stderr}");
}

tests_of!(watch_matches_cprofile_on_richards {
    watchpoints_match_cprofile_on_richards_on_debian_3_11: (&Python::debian());
    watchpoints_match_cprofile_on_richards_on_pyenv_3_12_without_the_trampoline:
        (&Python::pyenv("3.12"));
});
