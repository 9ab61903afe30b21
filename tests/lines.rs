//! pyprobe lines against real CPython 3.11 processes with real BPF: exact executions per line
//! through loops, generators, exceptions and threads, the in-kernel --file glob, and errors.
mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;

/// Line number of the line tagged `# line:TAG` in a workload, so expectations follow the script.
fn tagged_line(script_name: &str, tag: &str) -> u64 {
    marked_line(script_name, &format!("# line:{tag}")) as u64
}

/// Counts per line of files whose path ends with `file`.
fn counts_in(report: &serde_json::Value, file: &str) -> BTreeMap<u64, u64> {
    report["lines"]
        .as_array()
        .expect("lines array")
        .iter()
        .filter(|l| l["file"].as_str().unwrap().ends_with(file))
        .map(|l| (l["line"].as_u64().unwrap(), l["count"].as_u64().unwrap()))
        .collect()
}

/// hot_lines.py's lines and how often each runs: a loop body N times, its `for` line N+1.
fn assert_known_lines(report: &serde_json::Value) {
    let s = "hot_lines.py";
    let got = counts_in(report, "/hot_lines.py");
    for (tag, want) in [
        ("hot", 1000),
        ("yield", 300),
        ("raise", 200),
        ("caught", 200),
        ("thread", 4 * 2500),
    ] {
        let line = tagged_line(s, tag);
        assert_eq!(got.get(&line), Some(&want), "{tag} (line {line}): {got:?}");
    }
    for (tag, want) in [("hot", 1001), ("yield", 301), ("thread", 4 * 2501)] {
        let line = tagged_line(s, tag) - 1;
        assert_eq!(got.get(&line), Some(&want), "for line of {tag}: {got:?}");
    }
    assert_eq!(report["lost"]["lines_full"], 0);
    assert_eq!(report["lost"]["files_full"], 0);
}

#[test]
fn counts_each_line_exactly_by_pid_and_the_code_stays_correct() {
    // hot_lines.py asserts its own results (exceptions, generators, threads) and exits 1 if
    // the interpreter got anything wrong under the line probe: `Pyprobe::trace` checks its status.
    let report = Pyprobe::new(&["lines", "--json"])
        .trace(Workload::script("hot_lines.py"))
        .report();
    assert_known_lines(&report);
    let other_files = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["file"].as_str().unwrap().ends_with("/threading.py"))
        .count();
    assert!(
        other_files > 0,
        "without --file every file counts: {report}"
    );
}

/// The file of each line of a report.
fn files_of(report: &serde_json::Value) -> Vec<&str> {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["file"].as_str().unwrap())
        .collect()
}

#[test]
fn file_glob_is_decided_in_the_kernel() {
    for glob in ["hot_lines.py", "*/scripts/hot_*.py", "*lines.p?"] {
        let report = Pyprobe::new(&["lines", "--file", glob, "--json"])
            .trace(Workload::script("hot_lines.py"))
            .report();
        assert_known_lines(&report);
        let files = files_of(&report);
        assert!(
            files.iter().all(|f| f.ends_with("/hot_lines.py")),
            "{glob}: {files:?}"
        );
    }
    // A bare name matches on a path boundary only.
    let report = Pyprobe::new(&["lines", "--file", "lines.py", "--json"])
        .trace(Workload::script("hot_lines.py"))
        .report();
    assert_eq!(report["lines"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["total"], 0);
}

#[test]
fn a_spawned_command_is_counted_from_its_first_line_with_top() {
    let (out, _) = Pyprobe::new(&["lines", "--json", "--file", "hot_lines.py"])
        .spawn(Workload::script("hot_lines.py"))
        .run_with_go_ok();
    assert!(out.lines().any(|l| l == "ok"), "workload finished: {out}");
    let report = last_json(&out);
    assert_known_lines(&report);
    // Module level ran once: `import sys` is line 3 of the script.
    assert_eq!(counts_in(&report, "/hot_lines.py").get(&3), Some(&1));

    let (stdout, _) = Pyprobe::new(&["lines", "--json", "--file", "hot_lines.py", "--top", "2"])
        .spawn(Workload::script("hot_lines.py"))
        .run_with_go_ok();
    let report = last_json(&stdout);
    let thread = tagged_line("hot_lines.py", "thread");
    let top: Vec<(u64, u64)> = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["line"].as_u64().unwrap(), l["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(top, [(thread - 1, 10004), (thread, 10000)]);
}

#[test]
fn the_table_puts_the_hottest_line_first() {
    let (stdout, _) = Pyprobe::new(&["lines", "--file", "hot_lines.py"])
        .spawn(Workload::script("hot_lines.py"))
        .run_with_go_ok();
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("COUNT"))
        .collect();
    let thread = tagged_line("hot_lines.py", "thread");
    assert!(
        table[1].trim().starts_with("10004  ")
            && table[1].ends_with(&format!("/hot_lines.py:{}", thread - 1)),
        "{stdout}"
    );
}

#[test]
fn a_version_without_the_line_probe_is_explained() {
    assert_refused_on_idle(
        &Python::sid("3.13"),
        "lines",
        "the line probe exists only up to CPython 3.11; what works here: pyprobe imports, pyprobe audit",
    );
}

#[test]
fn a_python_without_probes_is_refused() {
    assert_refuses_a_python_without_probes("lines");
}

#[test]
fn bad_arguments_are_refused() {
    assert_clean_failures(&[
        (
            &["lines", "--pid", "1", "--file", "[ab].py"],
            "invalid --file \"[ab].py\"",
        ),
        (&["lines"], "no target"),
        (&["lines", "--pid", "4194304"], "no process with PID"),
    ]);
}

/// The extremes of what `--file` accepts each load at once and count exactly: the shortest
/// glob, the longest, all `*` and all `?` (the verifier once gave up on one-byte globs).
#[test]
fn every_extreme_glob_loads_and_matches_exactly() {
    let longest = pyprobe::trace::glob::LONGEST;
    let dir = TempDir::new("globs");
    let body = "n = 0\nfor i in range(7):\n    n += i\n";
    let short = dir.write("a", body);
    let long_name = format!("{}.py", "l".repeat(longest - 3));
    let long = dir.write(&long_name, body);
    let lines = |report: &serde_json::Value, file: &str| -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = report["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["file"] == file)
            .map(|l| (l["line"].as_u64().unwrap(), l["count"].as_u64().unwrap()))
            .collect();
        v.sort();
        v
    };
    let known = [(1, 1), (2, 8), (3, 7)];
    // Whether other files match too: None where that depends on the machine's paths.
    for (glob, script, others) in [
        ("a".to_string(), &short, Some(false)),
        ("?".to_string(), &short, Some(false)),
        ("*".to_string(), &short, Some(true)),
        (long_name.clone(), &long, Some(false)),
        ("?".repeat(longest), &long, Some(false)),
        ("*".repeat(longest), &long, Some(true)),
        (format!("*{}", "?".repeat(longest - 1)), &long, None),
    ] {
        let out = Command::new(pyprobe_bin())
            .args(["lines", "--json", "--file", &glob, "--", PYTHON, script])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "--file {glob}: {err}");
        let report = last_json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(lines(&report, script), known, "--file {glob}: {report}");
        let files = files_of(&report);
        if let Some(others) = others {
            assert_eq!(
                files.iter().any(|f| f != script),
                others,
                "--file {glob}: {files:?}"
            );
        }
    }
    assert_clean_failure(
        &["lines", "--pid", "1", "--file", &"?".repeat(longest + 1)],
        &format!("longer than {longest} bytes"),
    );
}

/// A file whose path is longer than the kernel reads whole keeps its end (the file name, which
/// --file matches), and the cut is reported.
#[test]
fn a_path_longer_than_the_kernel_reads_keeps_its_file_name() {
    let dir = TempDir::new("long-lines");
    let script = dir.write(
        &long_path(&dir, 600, "deep_target.py"),
        "n = 0\nfor i in range(7):\n    n += i\n",
    );
    assert!(script.len() > 600);
    for glob in ["deep_target.py", "*/deep_target.py", "*_target.p?"] {
        let out = Command::new(pyprobe_bin())
            .args(["lines", "--json", "--file", glob, "--", PYTHON, &script])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        let report = last_json(&String::from_utf8_lossy(&out.stdout));
        let rows = report["lines"].as_array().unwrap();
        let mut got: Vec<(u64, u64)> = rows
            .iter()
            .map(|l| (l["line"].as_u64().unwrap(), l["count"].as_u64().unwrap()))
            .collect();
        got.sort();
        assert_eq!(got, [(1, 1), (2, 8), (3, 7)], "--file {glob}: {report}");
        for l in rows {
            let file = l["file"].as_str().unwrap();
            assert!(script.ends_with(file), "{file:?} is the end of {script:?}");
            assert!(file.ends_with("/deep_target.py"), "{file}");
            assert_eq!(l["file_truncated"], true);
        }
        assert_eq!(report["lost"]["paths_truncated"], 1, "{report}");
    }
    let out = Command::new(pyprobe_bin())
        .args(["lines", "--file", "deep_target.py", "--", PYTHON, &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/deep_target.py:2\n"), "{text}");
    assert!(
        text.contains("WARNING: 1 file paths longer than 511 bytes: "),
        "{text}"
    );
}
