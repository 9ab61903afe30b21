//! known_calls.py's exact calls, as every version's counting must report them.
use std::collections::BTreeMap;

use super::{counts_by_name, script};

/// Line of `def NAME(` in a workload, so expectations follow the script.
pub fn def_line(script_name: &str, def: &str) -> u32 {
    let text = std::fs::read_to_string(script(script_name)).unwrap();
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix("async ")
                .unwrap_or(l)
                .starts_with(&format!("def {def}("))
        })
        .unwrap_or_else(|| panic!("no def {def} in {script_name}")) as u32
        + 1
}

/// The exact calls of known_calls.py, keyed by (name as reported, def line).
pub fn known_calls() -> BTreeMap<(String, u32), u64> {
    let s = "known_calls.py";
    let long = "a_function_name_that_is_much_longer_than_the_kernel_keeps_for_a";
    let mut m = BTreeMap::new();
    for (name, def, count) in [
        ("fib", "fib", 21891),
        ("raiser", "raiser", 400),
        ("catcher", "catcher", 100),
        ("gen", "gen", 550),
        ("echo", "echo", 80),
        ("drive_echo", "drive_echo", 10),
        ("method", "method", 300),
        ("thread_work", "thread_work", 2000),
        ("worker", "worker", 4),
        ("größe", "größe", 7),
        ("函数", "函数", 5),
        (
            long,
            "a_function_name_that_is_much_longer_than_the_kernel_keeps_for_a_name_one",
            3,
        ),
        (
            long,
            "a_function_name_that_is_much_longer_than_the_kernel_keeps_for_a_name_two",
            4,
        ),
        ("leaf", "leaf", 50),
        ("runner", "runner", 11),
        ("func1", "func1", 1000),
        ("func2", "func2", 200),
        ("func3", "func3", 30),
        ("main", "main", 1),
    ] {
        m.insert((name.to_string(), def_line(s, def)), count);
    }
    // Two classes' __init__ in one file: different functions, counted apart.
    let text = std::fs::read_to_string(script(s)).unwrap();
    let inits: Vec<u32> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("def __init__("))
        .map(|(i, _)| i as u32 + 1)
        .collect();
    assert_eq!(inits.len(), 2);
    m.insert(("__init__".into(), inits[0]), 21);
    m.insert(("__init__".into(), inits[1]), 30);
    m
}

pub fn assert_known_counts(report: &serde_json::Value) {
    assert_known_counts_but(report, &[]);
}

/// The same for every function but `skip`: where calls are counted at their entry, main() was
/// already running when pyprobe attached by PID.
pub fn assert_known_counts_but(report: &serde_json::Value, skip: &[&str]) {
    let got: BTreeMap<(String, u32), u64> = counts_by_name(report, "/known_calls.py")
        .into_iter()
        .map(|(n, l, c)| ((n, l), c))
        .collect();
    for (key, want) in known_calls()
        .into_iter()
        .filter(|(k, _)| !skip.contains(&k.0.as_str()))
    {
        assert_eq!(got.get(&key), Some(&want), "{key:?}: all counts {got:?}");
    }
    let long_rows: Vec<&serde_json::Value> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"].as_str().unwrap().starts_with("a_function_name"))
        .collect();
    assert_eq!(long_rows.len(), 2, "long names stay two functions");
    assert!(long_rows.iter().all(|f| f["name_truncated"] == true));
    let lost = &report["lost"];
    assert_eq!(lost["functions_full"], 0);
    assert_eq!(lost["code_read_errors"], 0);
}
