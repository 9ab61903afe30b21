//! What a fleet runs around the agent, checked with the real clients: the alert and recording
//! rules under `promtool`, every query of the Grafana dashboard and of the rules run by a real
//! Prometheus scraping a real agent, and the agent's pprof endpoint read by `go tool pprof`.
mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::Python;
use common::agent::{Agent, ONLY_OURS, Prometheus, Workload, curl};

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
    let dir = std::env::temp_dir().join(format!("pyprobe-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
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
    args.extend(["--filter", "agent_handle", "--max-overhead", "1000"]);
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
    let (ok, said) = agent.terminate();
    assert!(ok, "{said}");
}
