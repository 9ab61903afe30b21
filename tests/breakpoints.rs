//! pycount --filter on hardware breakpoints (src/source/breakpoints/): exact counts on CPython 3.12
//! and 3.14 with the perf trampoline, for functions that ran before attach, one first called after
//! it, a thread started after it and a name two functions share; and the shared probe where
//! breakpoints cannot serve, said in the banner; their cost metered once per hit whatever the
//! number of threads; `pyprobe probes` naming them where they serve.
mod common;

use std::time::Duration;

use common::{Pyprobe, Python, Workload, probes_row};

/// Traces tests/scripts/breakpoints.py by PID with pycount ARGS --json until it exits: the
/// report's (name, count) pairs sorted, and pyprobe's stderr.
fn count(py: &Python, args: &[&str]) -> (Vec<(String, u64)>, String) {
    let mut w = Workload::script("breakpoints.py").on(py).ready();
    let pid = w.pid();
    let pid_text = pid.to_string();
    // The mechanics of breakpoints: chosen at once (auto would measure for a second first).
    let mut all = vec!["count", "--source", "breakpoints"];
    all.extend(args);
    all.extend(["--pid", &pid_text, "--json"]);
    let p = Pyprobe::new(&all).start();
    w.send_line("go");
    let wout = w.wait_output(Duration::from_secs(60));
    py.remove_perf_map(pid);
    assert!(
        wout.status.success(),
        "workload failed: {}",
        String::from_utf8_lossy(&wout.stderr)
    );
    let (stdout, stderr) = p.finish();
    let mut counts: Vec<(String, u64)> = functions(&stdout, &stderr)
        .iter()
        .map(|f| {
            (
                format!("{}:{}", f["name"].as_str().unwrap(), f["line"]),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect();
    counts.sort();
    (counts, stderr)
}

/// The functions of pycount's JSON report.
fn functions(stdout: &str, stderr: &str) -> Vec<serde_json::Value> {
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    report["functions"].as_array().expect("functions").clone()
}

fn pairs(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = expected.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    v.sort();
    v
}

fn banner(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("Tracing"))
        .unwrap_or_else(|| panic!("no banner:\n{stderr}"))
}

/// A pycount run of `exact_on`: its arguments, the exact counts, what its banner must all say.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, u64)],
    &'static [&'static str],
);

fn exact_on(py: Python) {
    let cases: [Case; 4] = [
        // Functions that ran before attach, a thread started after it, a generator's resumes.
        (
            &["--filter", "warm", "--filter", "counter"],
            &[("warm:10", 3250), ("counter:36", 400)],
            &["hardware breakpoints on 2 functions"],
        ),
        // A name two functions share: each counted under its own row.
        (
            &["--filter", "run"],
            &[("run:23", 700), ("run:28", 500)],
            &["hardware breakpoints on 2 functions"],
        ),
        // First called after attach: the shared probe counts it until its breakpoint is set.
        (
            &["--filter", "cold", "--filter", "warm"],
            &[("cold:14", 1000), ("warm:10", 3250)],
            &[
                "hardware breakpoints on 1 function",
                "the shared probe counts cold until its first call",
            ],
        ),
        // Latency pairs a call's stub with the instruction after its call.
        (
            &["--filter", "warm", "--latency"],
            &[("warm:10", 3250)],
            &["~"],
        ),
    ];
    for (args, expected, says) in cases {
        let (counts, stderr) = count(&py, args);
        assert_eq!(counts, pairs(expected), "{args:?}: {stderr}");
        let b = banner(&stderr);
        assert!(says.iter().all(|s| b.contains(s)), "{args:?}: {stderr}");
    }
}

tests_of!(exact_on {
    exact_on_pyenv_3_12_with_x_perf: (Python::pyenv("3.12").with_trampoline());
    exact_on_sid_3_14_with_the_trampoline: (Python::sid("3.14").with_trampoline());
});

#[test]
fn the_shared_probe_where_breakpoints_cannot_serve() {
    let py = Python::pyenv("3.12").with_trampoline();
    // Five functions: more than the four debug registers.
    let (counts, stderr) = count(
        &py,
        &[
            "--filter", "warm", "--filter", "run", "--filter", "counter", "--filter", "spare",
        ],
    );
    assert_eq!(
        counts,
        pairs(&[
            ("warm:10", 3250),
            ("run:23", 700),
            ("run:28", 500),
            ("run:999", 1),
            ("counter:36", 400),
            ("spare:32", 10)
        ]),
        "{stderr}"
    );
    assert!(
        banner(&stderr)
            .contains("(the shared probe: 5 functions match, more than 4 breakpoints can watch)"),
        "{stderr}"
    );
    // A glob: any number of functions.
    let (counts, stderr) = count(&py, &["--filter", "war*"]);
    assert_eq!(counts, pairs(&[("warm:10", 3250)]), "{stderr}");
    assert!(
        banner(&stderr).contains("the shared probe: a --filter glob"),
        "{stderr}"
    );
}

/// `R probe hits/s` and `X s` of pyprobe's whole-session cost line: the hits it metered.
fn metered_hits(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("pyprobe: over "))
        .unwrap_or_else(|| panic!("no session cost:\n{stderr}"));
    let secs: f64 = line["pyprobe: over ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rate = line.rsplit_once(": ").unwrap().1.split(' ').next().unwrap();
    let (digits, scale) = match rate.as_bytes().last() {
        Some(b'k') => (&rate[..rate.len() - 1], 1e3),
        Some(b'M') => (&rate[..rate.len() - 1], 1e6),
        _ => (rate, 1.0),
    };
    digits.parse::<f64>().unwrap() * scale * secs
}

/// pycount --filter NAME --json for four seconds on tests/scripts/parked_threads.py on 3.12:
/// the report's (name, count) pairs, and pyprobe's stderr.
fn parked(name: &str) -> (Vec<(String, u64)>, String) {
    let py = Python::pyenv("3.12").with_trampoline();
    let mut w = Workload::script("parked_threads.py").on(&py).ready();
    let pid = w.pid();
    let pid_text = pid.to_string();
    let p = Pyprobe::new(&[
        "count",
        "--source",
        "breakpoints",
        "--filter",
        name,
        "--pid",
        &pid_text,
        "--json",
        "--duration",
        "4",
    ])
    .start();
    w.send_line("go");
    let (stdout, stderr) = p.finish();
    py.remove_perf_map(pid);
    let counts = functions(&stdout, &stderr)
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect();
    (counts, stderr)
}

/// The meter's line says about 3000 breakpoint hits: it rounds the rate to two or three digits
/// and the time to a tenth of a second.
fn assert_about_3000_hits_metered(stderr: &str) {
    let hits = metered_hits(stderr);
    assert!(
        (hits - 3000.0).abs() < 3000.0 * 0.15,
        "{hits} hits metered:\n{stderr}"
    );
}

/// `parked(name)` counts `count` calls of it, its banner says `says`, and its meter about 3000
/// breakpoint hits.
fn assert_parked_counted_and_metered(name: &str, count: u64, says: &str) {
    let (counts, stderr) = parked(name);
    assert_eq!(counts, pairs(&[(name, count)]), "{stderr}");
    assert!(banner(&stderr).contains(says), "{stderr}");
    assert_about_3000_hits_metered(&stderr);
}

#[test]
fn each_call_metered_once_with_threads_parked_at_attach() {
    // Four threads, a breakpoint each on one program: 3000 runs of it, not 12000.
    assert_parked_counted_and_metered("rare", 3000, "hardware breakpoints on 1 function");
}

#[test]
fn a_breakpoint_set_during_the_session_is_metered() {
    // late() first runs after attach: the shared probe counts that call (and meters the few
    // calls of the two seconds it waits), its breakpoint the 3000 after.
    assert_parked_counted_and_metered(
        "late",
        3001,
        "the shared probe counts late until its first call",
    );
}

#[test]
fn probes_lists_breakpoints_where_the_trampoline_is_on() {
    let row = "pycount --filter NAME (exact, up to 4)";
    let py = Python::pyenv("3.12").with_trampoline();
    let w = Workload::script("parked_threads.py").on(&py).ready();
    let pid = w.pid().to_string();
    let text = Pyprobe::new(&["probes", "--pid", &pid]).run();
    let json = Pyprobe::new(&["probes", "--pid", &pid, "--json"]).run();
    py.remove_perf_map(w.pid());
    let text = String::from_utf8_lossy(&text.stdout);
    let (line, works, how) = probes_row(&text, row);
    assert_eq!(works, "yes", "{line}");
    assert!(
        how.trim_start()
            .starts_with("hardware breakpoints on the functions' trampoline stubs: ~")
            && how.ends_with(
                "us per call of them, nothing for other calls (up to 2 functions with --latency)"
            ),
        "{line}"
    );
    // Right after pycount's own row, in the same columns.
    let tools: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("TOOL"))
        .collect();
    assert!(
        tools[1].starts_with("pycount ") && tools[2] == line,
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let tools = json["tools"].as_array().unwrap();
    assert_eq!(tools[1]["tool"], row);
    assert_eq!(tools[1]["works"], true);
    assert!(
        tools[1]["how"]
            .as_str()
            .unwrap()
            .starts_with("hardware breakpoints")
    );

    // No trampoline, no row: Debian's 3.11 counts on its USDT probes.
    let w = Workload::script("parked_threads.py").ready();
    let text = Pyprobe::new(&["probes", "--pid", &w.pid().to_string()]).run();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("pycount --latency") && !text.contains(row),
        "{text}"
    );
}

/// pycount --filter NAME (--source auto) on tests/scripts/source_auto.py on 3.12 with the
/// trampoline for two seconds: the banner and anything pycount says after it, and NAME's count
/// against the rounds the workload says it ran.
fn auto(name: &str) -> (String, u64, u64) {
    let py = Python::pyenv("3.12").with_trampoline();
    let mut w = Workload::script("source_auto.py").on(&py).ready();
    let pid = w.pid();
    let pid_text = pid.to_string();
    let p = Pyprobe::new(&["count", "--filter", name, "--pid", &pid_text, "--json"]).start();
    w.send_line("go");
    std::thread::sleep(Duration::from_secs(2));
    w.send_line("stop");
    let wout = w.wait_output(Duration::from_secs(60));
    py.remove_perf_map(pid);
    let rounds: u64 = String::from_utf8_lossy(&wout.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("the workload's rounds");
    let (stdout, stderr) = p.finish();
    let counted = functions(&stdout, &stderr)
        .iter()
        .filter(|f| f["name"] == name)
        .map(|f| f["count"].as_u64().unwrap())
        .sum();
    (stderr, counted, rounds)
}

// --source auto without --latency takes the watchpoint source at once (tests/watch.rs): no
// first second on the shared probe, whether the function is rare or hot; exact either way.
/// `auto(name)` took the watchpoint source and counted `per_round` calls of each round the
/// workload ran: pyprobe's stderr.
fn assert_auto_watches_exactly(name: &str, per_round: u64) -> String {
    let (stderr, counted, rounds) = auto(name);
    assert!(
        banner(&stderr).contains("hardware watchpoints on 1 function"),
        "{stderr}"
    );
    assert_eq!(counted, rounds * per_round, "{stderr}");
    stderr
}

#[test]
fn auto_takes_watchpoints_for_a_rare_function_exactly() {
    // One call per round, all after attach.
    let stderr = assert_auto_watches_exactly("rare", 1);
    assert!(!stderr.contains("counting on"), "a trial: {stderr}");
}

#[test]
fn auto_counts_a_hot_function_exactly_on_watchpoints() {
    assert_auto_watches_exactly("hot", 100);
}
