//! The wheel scripts/wheel builds (scripts/test builds it first): installed with pip into a
//! fresh virtual environment whose PATH has no Rust, its `pyprobe` and `pycount` trace a live
//! process to the exact count.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::known_calls::def_line;
use common::{PYTHON, Pyprobe, TempDir, Workload, counts_by_name};

/// The wheel of this version: $PYPROBE_WHEEL, else the one scripts/wheel left in target/wheels.
fn wheel() -> PathBuf {
    if let Some(w) = std::env::var_os("PYPROBE_WHEEL") {
        return w.into();
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wheels");
    let prefix = format!("pyprobe-{}-py3-none-manylinux_", env!("CARGO_PKG_VERSION"));
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with("_x86_64.whl")
        })
        .unwrap_or_else(|| {
            panic!(
                "no {prefix}*_x86_64.whl in {}: build it with scripts/wheel (scripts/test does)",
                dir.display()
            )
        })
}

/// A PATH of the venv and the system's own directories only: no ~/.cargo/bin.
fn path_without_rust(venv: &Path) -> String {
    format!("{}/bin:/usr/sbin:/usr/bin:/sbin:/bin", venv.display())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_wheel_installs_with_pip_and_traces_without_rust() {
    let wheel = wheel();
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    // The tag is the binary's glibc need: 2.34 today (scripts/wheel reads it with objdump).
    assert!(
        name.ends_with("-py3-none-manylinux_2_34_x86_64.whl"),
        "{name}"
    );
    let dir = TempDir::new("wheel");
    let venv = dir.path().join("venv");
    run(Command::new(PYTHON).args(["-m", "venv"]).arg(&venv));
    let path = path_without_rust(&venv);
    for tool in ["cargo", "rustc"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(!found.status.success(), "{tool} is on {path}");
    }
    // From the file alone: no index, no build.
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--no-index", "--only-binary=:all:"])
        .arg(&wheel)
        .env("PATH", &path));
    for bin in ["pyprobe", "pycount", "pyflow", "pygc"] {
        assert!(venv.join("bin").join(bin).exists(), "no {bin} installed");
    }
    let which = run(Command::new("sh")
        .args(["-c", "command -v pyprobe"])
        .env("PATH", &path));
    assert_eq!(which.trim(), venv.join("bin/pyprobe").to_string_lossy());
    let version = run(Command::new("pyprobe").arg("--version").env("PATH", &path));
    assert_eq!(
        version.trim(),
        format!("pyprobe {}", env!("CARGO_PKG_VERSION"))
    );

    // Each name as installed, by PID: the exact calls of a known function.
    for (cmd, args, function, calls) in [
        ("pycount", vec![], "fib", 21891),
        ("pyprobe", vec!["count"], "method", 300),
    ] {
        let mut w = Workload::script("known_calls.py").ready();
        let pid = w.pid().to_string();
        let mut named = Command::new(cmd);
        named
            .args(args)
            .args(["--pid", &pid, "--filter", function, "--json"])
            .env("PATH", &path);
        let p = Pyprobe::command(named).start();
        w.send_line("go");
        let done = w.wait_output(Duration::from_secs(60));
        assert!(done.status.success());
        let (stdout, stderr) = p.finish();
        let report: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{cmd} printed no JSON ({e}):\n{stdout}\n{stderr}"));
        let counts = counts_by_name(&report, "known_calls.py");
        let want = def_line("known_calls.py", function);
        assert!(
            counts
                .iter()
                .any(|(n, l, c)| n.ends_with(function) && *l == want && *c == calls),
            "{cmd}: {counts:?}\n{stderr}"
        );
    }
}
