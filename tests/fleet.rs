//! What a fleet runs around the agent, checked with the real clients: the alert and recording
//! rules under `promtool`, every query of the Grafana dashboard and of the rules run by a real
//! Prometheus scraping a real agent, and the agent's pprof endpoint read by `go tool pprof`.
mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::agent::{Agent, ONLY_OURS, Prometheus, Workload, curl, tls_web_config};
use common::{Python, TempDir};

/// One agent at a time: each is system-wide.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const WAIT: Duration = Duration::from_secs(30);

fn deploy(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool runs (Debian's prometheus package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let (ok, said) = promtool(&["check", "rules", &deploy("prometheus/rules.yml")]);
    assert!(ok && said.contains("SUCCESS: 11 rules found"), "{said}");
    let (ok, said) = promtool(&["test", "rules", &deploy("prometheus/rules_test.yml")]);
    assert!(ok && said.contains("SUCCESS"), "{said}");

    // The unit tests can fail: an alert expected with the wrong value is caught.
    let tmp = TempDir::new("rules");
    let dir = tmp.path();
    std::fs::copy(deploy("prometheus/rules.yml"), dir.join("rules.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/rules_test.yml")).unwrap();
    let wrong = tests.replace("lost 5 functions_full", "lost 6 functions_full");
    assert_ne!(wrong, tests);
    std::fs::write(dir.join("rules_test.yml"), wrong).unwrap();
    let (ok, said) = promtool(&[
        "test",
        "rules",
        &dir.join("rules_test.yml").to_string_lossy(),
    ]);
    assert!(!ok && said.contains("PyprobeLostEvents"), "{said}");
}

/// Every `expr:` of rules.yml (one line each there).
fn rule_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("prometheus/rules.yml")).unwrap();
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(n) = line
            .strip_prefix("- record: ")
            .or_else(|| line.strip_prefix("- alert: "))
        {
            name = n.to_string();
        } else if let Some(e) = line.strip_prefix("expr: ") {
            out.push((name.clone(), e.to_string()));
        }
    }
    out
}

/// Every target expression of the dashboard, by panel title, with Grafana's variables given
/// the values a user's "All" gives them.
fn dashboard_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/pyprobe.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$comm", ".*");
            assert!(!expr.contains('$'), "a variable left in {expr}");
            out.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    out
}

#[test]
fn every_dashboard_and_rule_query_runs_on_a_real_prometheus() {
    let _one = serial();
    let debian = Python::debian();
    let mut w = Workload::start(&debian, &["4,2,1", "1000", "busy"]);
    let mut args = ONLY_OURS.to_vec();
    // --latency: the dashboard's latency panels need durations, which the agent measures on
    // the shared probe only (a --filter alone counts on watchpoints).
    args.extend([
        "--filter",
        "agent_handle",
        "--latency",
        "--max-overhead",
        "1000",
    ]);
    let agent = Agent::start(&args);
    let pid = w.pid().to_string();
    agent.wait_for("pyprobe_function_probes_active", &[("pid", &pid)], WAIT);
    let rules = deploy("prometheus/rules.yml");
    let prom = Prometheus::start_with_rules(agent.port, &[&rules]);
    let scraped = |expr: &str| {
        let deadline = Instant::now() + WAIT;
        while prom.query(expr).iter().all(|(_, v)| *v == 0.0) {
            assert!(Instant::now() < deadline, "nothing in {expr}");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // The work after Prometheus' first scrape, so that its rates see it.
    scraped(&format!("pyprobe_function_probes_active{{pid=\"{pid}\"}}"));
    let own = w.go();
    assert_eq!(own.collections, vec![4, 2, 1]);
    scraped(&format!("python:gc_pause_share:rate5m{{pid=\"{pid}\"}}"));
    scraped(&format!("python:function_calls:rate5m{{pid=\"{pid}\"}}"));
    scraped(&format!("python:gc_pause_seconds:p99_5m{{pid=\"{pid}\"}}"));

    // Prometheus loaded every rule and evaluates each without error.
    let body = curl(&[&format!("http://127.0.0.1:{}/api/v1/rules", prom.port)]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let loaded: Vec<&serde_json::Value> = v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(loaded.len(), rule_exprs().len(), "{body}");
    for r in &loaded {
        assert_eq!(r["health"], "ok", "{r}");
    }

    // Every query answers (Prometheus::query asserts "success"); the ones about what this
    // workload did answer with its series.
    let ours = |series: &[(HashMap<String, String>, f64)]| {
        series
            .iter()
            .any(|(l, _)| l.get("pid").is_none_or(|p| *p == pid))
    };
    let may_be_empty = [
        // Alerts: nothing here is over a threshold.
        "PythonGcPauseShareHigh",
        "PythonGcPauseP99High",
        "PyprobeFunctionProbesStopped",
        "PyprobeProcessUntraceable",
        "PyprobeLostEvents",
        // Stopped probes and untraceable processes: none here.
        "Function probes: overhead and state",
        "What cannot be traced",
    ];
    let mut empty = Vec::new();
    for (name, expr) in rule_exprs().into_iter().chain(dashboard_exprs()) {
        let got = prom.query(&expr);
        if !may_be_empty.contains(&name.as_str()) && !ours(&got) {
            empty.push(format!("{name}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "no data:\n{}", empty.join("\n"));

    // The recorded series hold the workload's numbers: calls at the rate it makes them
    // (busy: it calls agent_handle in a loop), and GC pauses in every generation.
    let share = prom.query(&format!("python:gc_pause_share:rate5m{{pid=\"{pid}\"}}"));
    assert_eq!(share.len(), 1, "{share:?}");
    assert!(share[0].1 > 0.0 && share[0].1 < 1.0, "{share:?}");
    let by_gen = prom.query(&format!(
        "python:gc_pause_share_by_generation:rate5m{{pid=\"{pid}\"}}"
    ));
    assert_eq!(by_gen.len(), 3, "{by_gen:?}");
    let p99 = prom.query(&format!("python:gc_pause_seconds:p99_5m{{pid=\"{pid}\"}}"));
    assert!(p99[0].1 > 0.0 && p99[0].1 <= 10.0, "{p99:?}");
    let calls = prom.query(&format!(
        "python:function_calls:rate5m{{pid=\"{pid}\",function=\"agent_handle\"}}"
    ));
    assert!(calls[0].1 > 100.0, "{calls:?}");
    // The dashboard's import table: the chain of three modules the workload imported (and,
    // busy, threading's own).
    let imports = prom.query(&format!("python_imports_total{{pid=\"{pid}\"}}"));
    assert!(imports[0].1 >= own.imports as f64, "{imports:?} {own:?}");
    assert_eq!(own.imports, 3);
    drop(prom);
    agent.stop();
}

/// `go tool pprof ARGS` (Debian's golang-go), its output; its fetched copies kept in `dir`.
fn go_pprof(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .env("PPROF_TMPDIR", dir)
        .env("HOME", dir)
        .output()
        .expect("go tool pprof runs (Debian's golang-go)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// flat% of a function in `-top` output (lines "flat flat% sum% cum cum% name").
fn flat_share(top: &str, function: &str) -> f64 {
    top.lines()
        .find(|l| l.split_whitespace().last() == Some(function))
        .and_then(|l| l.split_whitespace().nth(1)?.strip_suffix('%')?.parse().ok())
        .unwrap_or_else(|| panic!("no {function} in:\n{top}"))
}

#[test]
fn go_tool_pprof_reads_the_agents_cpu_profile_of_two_processes() {
    let _one = serial();
    let (burn, lines) = common::Workload::script("fleet_burn.py").quiet().lines();
    let first = lines.recv().expect("fleet_burn.py's pids");
    let pids: Vec<&str> = first.split_whitespace().skip(1).collect();
    assert_eq!(pids.len(), 2, "fleet_burn.py said {first:?}");
    let (a, b) = (pids[0], pids[1]);
    let agent = Agent::start(&["--pid", a, "--pid", b, "--profile", "--profile-hz", "100"]);
    assert!(
        agent.said().contains("/debug/pprof/profile"),
        "{}",
        agent.said()
    );
    for pid in [a, b] {
        agent.wait_for("python_gc_collections_total", &[("pid", pid)], WAIT);
    }
    // Both sampled for longer than the profile asked for.
    std::thread::sleep(Duration::from_secs(4));
    let tmp = TempDir::new("pprof");
    let dir = tmp.path();
    let url = format!(
        "http://127.0.0.1:{}/debug/pprof/profile?seconds=3",
        agent.port
    );
    let top = go_pprof(dir, &["-top", &url]);
    let tags = go_pprof(dir, &["-tags", &url]);
    let one = go_pprof(dir, &["-top", &format!("{url}&pid={b}")]);
    // Bad requests: one line and a 400; profiles of the last minute at most.
    let status = |q: &str| {
        curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{}/debug/pprof/profile?{q}", agent.port),
        ])
    };
    let (too_long, bad_pid) = (status("seconds=61"), status("pid=x"));
    agent.stop();
    drop(burn);

    // 3/4 of the two processes' CPU time is burn_a's, 1/4 burn_b's (they take turns). The
    // rest is the module-level hand-over through the pipes (`<unknown>` in pprof): its system
    // calls are CPU time too, and grow on a loaded machine (measured up to 22%).
    let (sa, sb) = (flat_share(&top, "burn_a"), flat_share(&top, "burn_b"));
    let share_a = sa / (sa + sb) * 100.0;
    assert!(
        (share_a - 75.0).abs() <= 6.0 && sa + sb >= 70.0,
        "burn_a {sa}%, burn_b {sb}%:\n{top}"
    );
    assert!(top.contains("Type: cpu"), "{top}");
    // -tags: each process's samples under its pid, with its comm and version.
    for want in [
        "pid:",
        &format!(": {a}"),
        &format!(": {b}"),
        "comm:",
        "python3.11",
        "python_version:",
        "3.11.",
    ] {
        assert!(tags.contains(want), "no {want:?} in -tags:\n{tags}");
    }
    // &pid=: only the child's samples.
    assert!(flat_share(&one, "burn_b") >= 90.0, "{one}");
    assert!(!one.contains("burn_a"), "{one}");
    assert_eq!((too_long.as_str(), bad_pid.as_str()), ("400", "400"));
}

#[test]
fn the_profile_endpoint_takes_the_agents_tls_and_basic_auth() {
    let _one = serial();
    let (_tmp, config, ca) = tls_web_config("pprof-tls");
    let mut args = ONLY_OURS.to_vec();
    args.extend(["--profile", "--web-config-file", &config]);
    let agent = Agent::start(&args);
    let url = format!(
        "https://127.0.0.1:{}/debug/pprof/profile?seconds=1",
        agent.port
    );
    let status = |user: &[&str]| {
        let mut a = vec!["-o", "/dev/null", "-w", "%{http_code}", "--cacert", &ca];
        a.extend_from_slice(user);
        a.push(&url);
        curl(&a)
    };
    assert_eq!(status(&[]), "401");
    assert_eq!(status(&["-u", "prometheus:s3cret"]), "200");
    // What a scraper gets is a gzipped profile.proto.
    let body = Command::new("curl")
        .args(["-s", "--cacert", &ca, "-u", "prometheus:s3cret", &url])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(body.get(..2), Some(&[0x1f, 0x8b][..]), "{body:?}");
    agent.stop();

    // Without --profile the path says how to turn it on.
    let agent = Agent::start(&ONLY_OURS);
    let plain = curl(&[&format!(
        "http://127.0.0.1:{}/debug/pprof/profile",
        agent.port
    )]);
    assert_eq!(
        plain,
        "CPU profiles are off: start the agent with --profile\n"
    );
}
