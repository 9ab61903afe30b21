//! Typed errors of the library; `main` turns each into a one-line message the user can act on.
use std::path::{Path, PathBuf};

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
    #[error("{path}: not a readable ELF file: {why}")]
    BadElf { path: PathBuf, why: String },
    #[error("cannot start {command:?}: {why}")]
    Spawn { command: String, why: String },
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

    /// The message and its causes on one line, with a hint where the cause is a known one.
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
        msg.replace('\n', " ")
    }

    pub fn bpf(what: impl Into<String>, source: libbpf_rs::Error) -> Error {
        Error::Bpf {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
