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
