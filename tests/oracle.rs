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
    let out = Command::new(PYTHON)
        .args([&script("stdlib_work.py"), "--profile"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (report, _) = trace_pid(&args, "stdlib_work.py");
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
    assert!(p.exists(), "{} missing: scripts/test fetches pyperformance", p.display());
    p.to_string_lossy().into_owned()
}

/// cProfile's and pycount's per-function counts for one benchmark's work, keyed (line, name).
fn both_counts(bench: &str, expr: &str) -> (BTreeMap<(u64, String), u64>, BTreeMap<(u64, String), u64>) {
    let file = pyperformance_benchmark(bench);
    let driver = script("pyperformance_driver.py");
    let out = Command::new(PYTHON).args([&driver, &file, expr, "--profile"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let oracle: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let key = |f: &serde_json::Value| (f["line"].as_i64().unwrap() as u64, f["name"].as_str().unwrap().to_string());
    let want = oracle.iter().map(|f| (key(f), f["count"].as_u64().unwrap())).collect();

    let mut w = Guard::spawn(
        Command::new(PYTHON)
            .args([&driver, &file, expr])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped()),
    );
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(w.child().stdout.as_mut().unwrap()), &mut first).unwrap();
    assert_eq!(first.trim(), "ready");
    let pid = w.pid().to_string();
    let filter = format!("bm_{bench}/run_benchmark.py:*");
    let (p, rx) = start_pyprobe(&["count", "--pid", &pid, "--json", "--filter", &filter]);
    w.send_line("go");
    assert!(w.wait_output(std::time::Duration::from_secs(120)).status.success());
    let (stdout, stderr) = finish_pyprobe(p, rx);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}\n{stderr}"));
    assert_eq!(report["lost"]["functions_full"], 0);
    let got = report["functions"].as_array().unwrap().iter().map(|f| (key(f), f["count"].as_u64().unwrap())).collect();
    (want, got)
}

#[test]
fn pycount_matches_cprofile_on_pyperformance_programs() {
    let mut shared_names = 0;
    for (bench, expr) in [
        ("richards", "Richards().run(1)"),
        ("deltablue", "delta_blue(100)"),
        ("go", "versus_cpu()"),
        ("nqueens", "bench_n_queens(6)"),
        ("float", "benchmark(2000)"),
        ("raytrace", "bench_raytrace(1, 20, 20, None)"),
    ] {
        let (want, got) = both_counts(bench, expr);
        assert!(want.len() >= 5, "{bench}: the oracle saw {} functions", want.len());
        let names: Vec<&String> = want.keys().map(|k| &k.1).collect();
        shared_names += names.iter().filter(|n| names.iter().filter(|m| m == n).count() > 1).count();
        assert_eq!(got, want, "{bench}: pycount vs cProfile");
    }
    assert!(shared_names > 10, "these programs have many functions sharing a name in one file");
}
