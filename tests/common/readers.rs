//! Independent readers that scripts/test installs under target/: py-spy, and a Python with the
//! jsonschema and protobuf libraries, in a venv; speedscope's JSON schema from its npm package.
use std::path::PathBuf;
use std::process::Command;

fn under_target(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(rel);
    assert!(
        p.exists(),
        "{} missing: scripts/test installs it",
        p.display()
    );
    p
}

pub fn py_spy() -> PathBuf {
    under_target("testenv/bin/py-spy")
}

/// The venv's Python (jsonschema, protobuf).
pub fn python() -> PathBuf {
    under_target("testenv/bin/python")
}

pub fn speedscope_schema() -> PathBuf {
    under_target("speedscope/file-format-schema.json")
}

/// Runs one of tests/scripts' checkers with the venv's Python and returns its JSON.
pub fn check(script: &str, args: &[&str]) -> serde_json::Value {
    let out = super::output_ok(Command::new(python()).arg(super::script(script)).args(args));
    serde_json::from_slice(&out.stdout).expect("checker JSON")
}
