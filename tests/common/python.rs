//! The CPythons the tests run workloads on: Debian's 3.11, the pyenv builds (no probes), and the
//! chroots of scripts/testbeds, each with how to start it and where its files must go.
use std::path::PathBuf;
use std::process::Command;

use super::{PYTHON, script, testbed};

#[derive(Debug, Clone)]
pub struct Python {
    /// The interpreter as it sees itself.
    pub exe: String,
    /// The chroot it runs in, if any: workloads are copied there.
    pub root: Option<&'static str>,
    /// Started with CPython's perf trampoline on (PYTHONPERFSUPPORT=1).
    pub trampoline: bool,
}

impl Python {
    pub fn debian() -> Python {
        Python {
            exe: PYTHON.into(),
            root: None,
            trampoline: false,
        }
    }

    /// The interpreter at `exe` on this machine (a copy, a venv's), run as it is.
    pub fn at(exe: impl AsRef<std::path::Path>) -> Python {
        Python {
            exe: exe.as_ref().to_string_lossy().into_owned(),
            root: None,
            trampoline: false,
        }
    }

    /// A pyenv build (built without probes), e.g. "3.10": the newest installed patch release.
    pub fn pyenv(minor: &str) -> Python {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let versions = PathBuf::from(home).join(".pyenv/versions");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&versions)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (the pyenv builds are part of the machine image)",
                    versions.display()
                )
            })
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{minor}."))
            })
            .map(|e| e.path().join("bin/python3"))
            .filter(|p| p.exists())
            .collect();
        found.sort();
        let exe = found.pop().unwrap_or_else(|| {
            panic!(
                "no pyenv build of CPython {minor} in {}",
                versions.display()
            )
        });
        Python {
            exe: exe.to_string_lossy().into_owned(),
            root: None,
            trampoline: false,
        }
    }

    fn chroot(root: &'static str, minor: &str) -> Python {
        let exe = format!("/usr/bin/python{minor}");
        assert!(
            std::path::Path::new(&format!("{root}{exe}")).exists(),
            "{root}{exe} missing: scripts/test builds it with scripts/testbeds"
        );
        Python {
            exe,
            root: Some(root),
            trampoline: false,
        }
    }

    pub fn sid(minor: &str) -> Python {
        Python::chroot(testbed("sid"), minor)
    }

    pub fn bullseye() -> Python {
        Python::chroot(testbed("bullseye"), "3.9")
    }

    pub fn trixie() -> Python {
        Python::chroot(testbed("trixie"), "3.13")
    }

    /// The same interpreter started with its perf trampoline on (for --pid on 3.12+).
    pub fn with_trampoline(mut self) -> Python {
        self.trampoline = true;
        self
    }

    /// A workload where this interpreter sees it (copied into its chroot, under its own name).
    pub fn script(&self, name: &str) -> String {
        self.file(&script(name), name)
    }

    /// A file where this interpreter sees it: in its chroot, a copy at `rel` under a directory
    /// of this test process (so that a path's end stays what filters match), with the
    /// workloads' shared `harness.py` beside it.
    pub fn file(&self, host_path: &str, rel: &str) -> String {
        let Some(root) = self.root else {
            return host_path.to_string();
        };
        let inside = format!("/tmp/pyprobe-tests-{}/{rel}", std::process::id());
        let copy = PathBuf::from(format!("{root}{inside}"));
        let dir = copy.parent().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(host_path, &copy).unwrap();
        std::fs::copy(script("harness.py"), dir.join("harness.py")).unwrap();
        inside
    }

    /// The command that runs a workload (its path from `script`) on this interpreter, with
    /// arguments.
    pub fn command_with(&self, script_path: &str, args: &[&str]) -> Command {
        let mut cmd = self.command(script_path);
        cmd.args(args);
        cmd
    }

    /// The command that runs a workload (its path from `script`) on this interpreter.
    pub fn command(&self, script_path: &str) -> Command {
        let mut cmd = self.interpreter();
        cmd.arg(script_path);
        cmd
    }

    /// The interpreter alone (in its chroot, its trampoline on if asked), for flags and `-c`.
    pub fn interpreter(&self) -> Command {
        let mut cmd = match self.root {
            Some(root) => {
                let mut c = Command::new("chroot");
                c.args([root, &self.exe]);
                c
            }
            None => Command::new(&self.exe),
        };
        if self.trampoline {
            cmd.env("PYTHONPERFSUPPORT", "1");
        }
        cmd
    }

    /// Where CPython's perf trampoline writes its map for a process of this interpreter.
    pub fn perf_map(&self, pid: i32) -> PathBuf {
        PathBuf::from(format!("{}/tmp/perf-{pid}.map", self.root.unwrap_or("")))
    }

    /// Removes the perf map of a process the test started with the trampoline on.
    pub fn remove_perf_map(&self, pid: i32) {
        if self.trampoline {
            let _ = std::fs::remove_file(self.perf_map(pid));
        }
    }

    /// The same command as an argument list, for `pyprobe ... -- COMMAND`.
    pub fn argv(&self, script_path: &str) -> Vec<String> {
        let mut v = match self.root {
            Some(root) => vec!["chroot".to_string(), root.to_string(), self.exe.clone()],
            None => vec![self.exe.clone()],
        };
        v.push(script_path.to_string());
        v
    }
}
