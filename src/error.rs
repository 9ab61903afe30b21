//! Typed errors of the library; `main` turns each into a one-line message the user can act on.
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("no process with PID {0}")]
    NoSuchProcess(i32),
    #[error(
        "pyprobe needs root (or CAP_BPF and CAP_PERFMON) to load BPF programs; run it with sudo"
    )]
    NotRoot,
    #[error("cannot inspect PID {pid}: {why}")]
    NoAccess { pid: i32, why: String },
    #[error(
        "PID {pid} ({exe}) is not a Python process: no python executable or libpython is mapped"
    )]
    NotPython { pid: i32, exe: String },
    #[error(
        "{file} (CPython {version}) was built without USDT probes (no .note.stapsdt); \
         pyprobe needs an interpreter built --with-dtrace, as Debian's and Ubuntu's are"
    )]
    NoProbes { file: String, version: String },
    #[error("{0}")]
    ProbeUnavailable(String),
    #[error("{0}")]
    Usage(String),
    /// Ctrl-C or SIGTERM during a read that is not a session's (a stack dump).
    #[error("stopped before the read was done")]
    Stopped,
    /// Nothing of what was asked could be read from the target (each part says why).
    #[error("{0}")]
    Unreadable(String),
    #[error("invalid filter {pattern:?}: {why}")]
    InvalidFilter { pattern: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the results: {0}")]
    Output(#[source] std::io::Error),
    #[error(
        "PID {pid}: {what}, a name that is not UTF-8, and CPython {version}'s own code behind \
         its {probes} fails on such file names inside the program (UnicodeEncodeError, then \
         SystemError), which usually ends it: nothing attached (--force attaches anyway)"
    )]
    NonUtf8FileName {
        pid: i32,
        what: String,
        version: String,
        probes: String,
    },
    #[error("refusing {path}: {why}")]
    UnsafeFile { path: String, why: String },
    #[error("{path}: not a readable ELF file: {why}")]
    BadElf { path: PathBuf, why: String },
    #[error("cannot start {command:?}: {why}")]
    Spawn { command: String, why: String },
    #[error(
        "cannot {action} {what} at {addr:#x} in PID {pid} (not the layout pyprobe expects; \
         please report it with the Python version): {source}"
    )]
    TargetMemory {
        pid: i32,
        action: &'static str,
        what: &'static str,
        addr: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot switch on the perf trampoline in PID {pid}: {why}")]
    TrampolineUnavailable { pid: i32, why: String },
    #[error(
        "PID {pid} runs CPython {version}, which cannot run code sent from outside (PEP 768 \
         remote execution came in 3.14): restart it with PYTHONPERFSUPPORT=1 (or python -X perf) \
         to have the perf trampoline"
    )]
    RemoteExecUnsupported { pid: i32, version: String },
    #[error(
        "PID {pid} disabled remote debugging (-X disable-remote-debug or \
         PYTHON_DISABLE_REMOTE_DEBUG), so its perf trampoline cannot be switched on from outside: \
         restart it with PYTHONPERFSUPPORT=1 (or python -X perf)"
    )]
    RemoteDebugDisabled { pid: i32 },
    #[error(
        "the main thread of PID {pid} ran no Python code for {waited:?} (blocked in C, sleeping \
         or waiting), so the request to switch on the perf trampoline was withdrawn: retry while \
         it is busy, or restart it with PYTHONPERFSUPPORT=1"
    )]
    MainThreadBlocked { pid: i32, waited: Duration },
    #[error("PID {pid} could not switch on its perf trampoline: {why}")]
    TrampolineFailed { pid: i32, why: String },
    #[error("{interpreter} (CPython {version}): pyprobe cannot read its threads' stacks: {why}")]
    UnknownLayout {
        interpreter: String,
        version: String,
        why: String,
    },
    #[error("{what}: {source}")]
    Bpf {
        what: String,
        #[source]
        source: libbpf_rs::Error,
    },
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The message and its causes on one line, with a hint where the cause is a known one;
    /// escaped, as errors may quote the target's file names.
    pub fn one_line(&self) -> String {
        let mut msg = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let text = s.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            source = s.source();
        }
        if let Error::Bpf { source, .. } = self
            && source.kind() == libbpf_rs::ErrorKind::PermissionDenied
        {
            msg.push_str(" (loading BPF needs root, or CAP_BPF and CAP_PERFMON)");
        }
        crate::escape::escape_controls(&msg.replace('\n', " ")).into_owned()
    }

    pub fn bpf(what: impl Into<String>, source: libbpf_rs::Error) -> Error {
        Error::Bpf {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
