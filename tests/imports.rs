//! pyprobe imports against real CPython 3.11 processes with real BPF: the import tree of a
//! package of known nested modules, the slow one on top, bounded by the workload's own timing.
mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn names(nodes: &Value) -> Vec<&str> {
    nodes
        .as_array()
        .expect("an array of imports")
        .iter()
        .map(|n| n["module"].as_str().unwrap())
        .collect()
}

fn child<'a>(node: &'a Value, module: &str) -> &'a Value {
    element_where(&node["children"], "module", module)
        .unwrap_or_else(|| panic!("{module} not under {}", node["module"]))
}

fn ns(v: &Value) -> u64 {
    v.as_u64().expect("nanoseconds")
}

/// slowpkg's subtree: exactly its known modules, nested as imported, the slow one first, and
/// self time = cumulative minus the children's at every node.
fn assert_slowpkg_tree(pkg: &Value) {
    assert_eq!(pkg["module"], "slowpkg");
    assert_eq!(pkg["found"], true);
    assert_eq!(
        names(&pkg["children"])[0],
        "slowpkg.sleepy",
        "the slow module first"
    );
    let mut kids = names(&pkg["children"]);
    kids.sort();
    assert_eq!(
        kids,
        [
            "slowpkg.fast",
            "slowpkg.missing",
            "slowpkg.nested",
            "slowpkg.sleepy"
        ]
    );
    let nested = child(pkg, "slowpkg.nested");
    assert_eq!(names(&nested["children"]), ["slowpkg.nested.leaf"]);
    assert_eq!(child(pkg, "slowpkg.missing")["found"], false);
    for m in ["slowpkg.sleepy", "slowpkg.fast", "slowpkg.nested"] {
        assert_eq!(child(pkg, m)["found"], true, "{m}");
    }
    fn check_self(n: &Value) {
        let kids: u64 = n["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| ns(&c["cumulative_ns"]))
            .sum();
        assert_eq!(
            ns(&n["self_ns"]),
            ns(&n["cumulative_ns"]) - kids,
            "{}",
            n["module"]
        );
        n["children"]
            .as_array()
            .unwrap()
            .iter()
            .for_each(check_self);
    }
    check_self(pkg);
}

/// The workload's own `measured {...}` line.
fn measured(stdout: &str) -> Value {
    json_after(stdout, "measured ")
}

#[test]
fn a_spawned_command_shows_the_tree_with_the_slow_module_on_top() {
    let (stdout, _) = Pyprobe::new(&["imports", "--json"])
        .spawn(Workload::script("slow_imports.py"))
        .run_with_go_ok();
    let own = measured(&stdout);
    let report = last_json(&stdout);
    let roots = &report["imports"];
    // Traced from the first bytecode: the interpreter's own start-up imports are there too.
    assert!(names(roots).contains(&"encodings"), "{roots}");
    assert_eq!(names(roots)[0], "slowpkg", "slowest import first: {roots}");
    let pkg = &roots[0];
    assert_slowpkg_tree(pkg);
    // Bounds from the workload's own clock: the sleep happens inside slowpkg.sleepy, and the
    // whole import happens inside the workload's measurement around `import slowpkg`.
    let sleepy = child(pkg, "slowpkg.sleepy");
    assert!(
        ns(&sleepy["cumulative_ns"]) >= ns(&own["sleep_ns"]),
        "{sleepy} vs {own}"
    );
    assert!(ns(&pkg["cumulative_ns"]) >= ns(&sleepy["cumulative_ns"]));
    assert!(
        ns(&pkg["cumulative_ns"]) <= ns(&own["import_ns"]),
        "{pkg} vs {own}"
    );
    for (k, v) in report["lost"].as_object().unwrap() {
        assert_eq!(v, 0, "lost {k}");
    }
}

#[test]
fn by_pid_only_the_imports_made_after_attach_show() {
    let report = Pyprobe::new(&["imports", "--json"])
        .trace(Workload::script("slow_imports.py"))
        .report();
    assert_eq!(names(&report["imports"]), ["slowpkg"], "{report}");
    assert_slowpkg_tree(&report["imports"][0]);
    assert_eq!(report["count"], 6);
    assert_eq!(report["total_ns"], report["imports"][0]["cumulative_ns"]);
}

#[test]
fn the_table_indents_children_under_their_parent() {
    let (stdout, _) = Pyprobe::new(&["imports"])
        .spawn(Workload::script("slow_imports.py"))
        .run_with_go_ok();
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("CUMULATIVE"))
        .skip(1)
        .collect();
    assert!(rows[0].ends_with("  slowpkg"), "{stdout}");
    assert!(rows[1].ends_with("    slowpkg.sleepy"), "{stdout}");
    assert!(
        rows.iter()
            .any(|r| r.ends_with("    slowpkg.missing (not found)")),
        "{stdout}"
    );
    assert!(
        rows.iter()
            .any(|r| r.ends_with("      slowpkg.nested.leaf")),
        "{stdout}"
    );
}

#[test]
fn imports_on_cpython_3_13_are_traced_too() {
    // The chroot's python waits for a line, then imports a module it has not loaded yet.
    let w = Workload::code(
        "import sys; print('ready', flush=True); sys.stdin.readline(); import fractions",
    )
    .on(&Python::sid("3.13"))
    .ready();
    let pid = w.pid().to_string();
    let p = Pyprobe::new(&["imports", "--pid", &pid, "--json"]).start();
    w.release("go", Duration::from_secs(30));
    let (stdout, stderr) = p.finish();
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stderr}"));
    assert_eq!(names(&report["imports"])[0], "fractions", "{report}");
    assert!(
        names(&report["imports"][0]["children"]).contains(&"decimal"),
        "{report}"
    );
}

#[test]
fn a_python_without_probes_is_refused() {
    assert_refuses_a_python_without_probes("imports");
}

#[test]
fn bad_arguments_are_refused() {
    assert_clean_failures(&[
        (&["imports"], "no target"),
        (&["imports", "--pid", "4194304"], "no process with PID"),
        (
            &["imports", "--", "/nonexistent/python3"],
            "cannot start \"/nonexistent/python3\"",
        ),
    ]);
}

#[test]
fn sigterm_ends_the_session_with_its_report() {
    for (tool, expect) in [("imports", "slowpkg"), ("audit", "import")] {
        let mut w = Workload::script("import_then_wait.py").ready();
        let pid = w.pid().to_string();
        let Tracing {
            guard: p,
            stderr: rx,
        } = Pyprobe::new(&[tool, "--pid", &pid, "--json"]).start();
        w.send_line("go");
        std::thread::sleep(Duration::from_millis(1500));
        unsafe { libc::kill(p.pid(), libc::SIGTERM) };
        let out = p.wait_output(Duration::from_secs(20));
        let err: Vec<String> = rx.try_iter().collect();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{tool}: {}\n{}",
            err.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(expect),
            "{tool} printed its report: {stdout}"
        );
        w.send_line("done");
    }
}
