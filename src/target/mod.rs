//! Target discovery: from a PID to the file that holds CPython's probes, its version, and the
//! addresses pyprobe needs in the running process (reached through /proc/PID/root, so processes
//! in containers and chroots work).
use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

mod elf;
mod maps;

pub use elf::{ElfInfo, ProbeSite, Section, Symbol};
pub use maps::{Mapping, is_libpython, parse_maps};

use crate::error::{Error, Result};
use crate::versions::PyVersion;

/// A running CPython process and the interpreter file whose probes pyprobe attaches to.
#[derive(Debug, Clone)]
pub struct Target {
    pub pid: i32,
    /// The executable as the target sees it (`/proc/PID/exe`).
    pub exe: String,
    /// The file with the interpreter (executable or libpython), as the target sees it.
    pub interpreter: String,
    /// The same file reached from here: `/proc/PID/root/<interpreter>`.
    pub host_path: PathBuf,
    pub version: Option<PyVersion>,
    pub elf: ElfInfo,
    /// Run-time minus link-time address of the interpreter file (0 until it is mapped).
    pub bias: u64,
    /// pyprobe started it with CPython's perf trampoline switched on (PYTHONPERFSUPPORT=1).
    pub trampoline_requested: bool,
}

impl Target {
    /// Discovers the interpreter of a running process.
    pub fn from_pid(pid: i32) -> Result<Target> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if pid <= 0 || !proc_dir.exists() {
            return Err(Error::NoSuchProcess(pid));
        }
        let status = fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        if let Some(tgid) = field("Tgid:").and_then(|t| t.parse::<i32>().ok())
            && tgid != pid
        {
            return Err(Error::Usage(format!(
                "{pid} is a thread of process {tgid}: use --pid {tgid}"
            )));
        }
        if field("State:").is_some_and(|s| s.starts_with('Z')) {
            return Err(Error::Usage(format!(
                "process {pid} has exited (a zombie not yet reaped)"
            )));
        }
        let exe = match fs::read_link(proc_dir.join("exe")) {
            Ok(p) => p
                .to_string_lossy()
                .trim_end_matches(" (deleted)")
                .to_string(),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(no_access(pid)),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Kernel threads have no executable; a process that just exited has no /proc dir.
                if proc_dir.exists() {
                    return Err(Error::NotPython {
                        pid,
                        exe: "kernel thread".into(),
                    });
                }
                return Err(Error::NoSuchProcess(pid));
            }
            Err(e) => return Err(Error::io(&proc_dir.join("exe"), e)),
        };
        let maps_path = proc_dir.join("maps");
        let maps = match fs::read_to_string(&maps_path) {
            Ok(t) => parse_maps(&t),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(no_access(pid)),
            Err(_) => return Err(Error::NoSuchProcess(pid)),
        };
        let root = proc_dir.join("root");
        let exe_inode = fs::metadata(proc_dir.join("exe"))
            .map(|m| m.ino())
            .unwrap_or(0);
        let inode_of = |p: &str| {
            maps.iter()
                .find(|m| m.path == p)
                .map(|m| m.inode)
                .unwrap_or(if p == exe { exe_inode } else { 0 })
        };
        // When no path reaches the mapped file (replaced on disk by an upgrade, or deleted),
        // the kernel's own links to it still do.
        let magic_link = |p: &str| {
            if p == exe {
                return proc_dir.join("exe");
            }
            match maps.iter().find(|m| m.path == p) {
                Some(m) => proc_dir.join(format!("map_files/{:x}-{:x}", m.start, m.end)),
                None => root.join(p.trim_start_matches('/')),
            }
        };
        let host = |p: &str| reachable_path(&root, p, inode_of(p)).unwrap_or_else(|| magic_link(p));

        let exe_elf = ElfInfo::read(&host(&exe)).ok();
        let libpython = maps
            .iter()
            .find(|m| is_libpython(&m.path))
            .map(|m| m.path.clone());
        let exe_has_probes = exe_elf.as_ref().is_some_and(|e| e.has_python_probes());

        let (interpreter, elf) = if exe_has_probes {
            (exe.clone(), exe_elf.unwrap())
        } else if let Some(lib) = libpython {
            let elf = ElfInfo::read(&host(&lib))?;
            (lib, elf)
        } else if let Some(lib) = exe_elf
            .as_ref()
            .and_then(|e| find_needed_libpython(e, &root, &exe))
        {
            // Spawned and stopped at exec: the loader has not mapped libpython yet.
            let elf = ElfInfo::read(&host(&lib))?;
            (lib, elf)
        } else if exe_elf.as_ref().is_some_and(looks_like_python) {
            (exe.clone(), exe_elf.unwrap())
        } else {
            return Err(Error::NotPython { pid, exe });
        };

        let version = elf
            .py_version_hex
            .map(PyVersion::from_hex)
            .or_else(|| PyVersion::from_file_name(interpreter.rsplit('/').next().unwrap_or("")))
            .or_else(|| PyVersion::from_file_name(exe.rsplit('/').next().unwrap_or("")));
        let bias = maps
            .iter()
            .find(|m| m.path == interpreter && m.offset == 0)
            .map(|m| elf.load_bias(m.start))
            .unwrap_or(0);
        Ok(Target {
            pid,
            host_path: host(&interpreter),
            exe,
            interpreter,
            version,
            elf,
            bias,
            trampoline_requested: false,
        })
    }

    /// Fails with a message naming the file when the interpreter has no USDT probes.
    pub fn require_probes(&self) -> Result<()> {
        if self.elf.has_python_probes() {
            return Ok(());
        }
        Err(Error::NoProbes {
            file: self.interpreter.clone(),
            version: self.version_text(),
        })
    }

    pub fn version_text(&self) -> String {
        self.version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "unknown version".into())
    }

    /// Run-time address of a link-time address in the interpreter file.
    pub fn runtime_addr(&self, vaddr: u64) -> u64 {
        vaddr.wrapping_add(self.bias)
    }

    /// Bytes of the interpreter file at a link-time address (code and data that are not in
    /// `elf`'s symbol heads), bounded by `len`.
    pub fn file_bytes(&self, vaddr: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let offset = self.elf.file_offset(vaddr).ok_or_else(|| {
            std::io::Error::new(ErrorKind::InvalidInput, "address outside the file")
        })?;
        let mut f = fs::File::open(&self.host_path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len);
        f.take(len as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Reads the target's memory (needs ptrace access: root).
    pub fn read_memory(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut f = fs::File::open(format!("/proc/{}/mem", self.pid))?;
        f.seek(SeekFrom::Start(addr))?;
        let mut buf = vec![0; len];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Current value of a probe's semaphore in the target: how many tracers enable it.
    pub fn semaphore_value(&self, probe: &str) -> Option<u16> {
        let site = self.elf.probe(probe)?;
        if site.semaphore == 0 {
            return None;
        }
        let b = self
            .read_memory(self.runtime_addr(site.semaphore), 2)
            .ok()?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
}

/// The target's view of a path, reached from here. /proc/PID/exe and /proc/PID/maps name files
/// from our root when we can see them (a chroot: `/opt/root/usr/bin/python3`) and from the
/// target's root when we cannot (another mount namespace: a container); the inode decides.
fn reachable_path(root: &Path, path: &str, inode: u64) -> Option<PathBuf> {
    let through_root = root.join(path.trim_start_matches('/'));
    let candidates = [through_root, PathBuf::from(path)];
    candidates
        .into_iter()
        .find(|c| fs::metadata(c).is_ok_and(|m| inode == 0 || m.ino() == inode))
}

/// Not being root is the usual reason; otherwise the process is protected from us.
fn no_access(pid: i32) -> Error {
    let why = if crate::privileges::check_privileges().is_err() {
        "permission denied reading /proc/PID/exe: another user's process can be read only by \
         root (or with CAP_SYS_PTRACE)"
    } else {
        "permission denied reading /proc/PID/exe (another user namespace, or ptrace restrictions)"
    };
    Error::NoAccess {
        pid,
        why: why.into(),
    }
}

fn looks_like_python(elf: &ElfInfo) -> bool {
    elf.symbol("_PyRuntime").is_some() || elf.py_version_hex.is_some()
}

/// Resolves a DT_NEEDED libpython the way the loader would, in the usual places.
fn find_needed_libpython(elf: &ElfInfo, root: &Path, exe: &str) -> Option<String> {
    let lib = elf.needed.iter().find(|n| is_libpython(n))?;
    let exe_dir = Path::new(exe)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dirs = [
        format!("{exe_dir}/../lib"),
        "/usr/local/lib".into(),
        "/usr/lib/x86_64-linux-gnu".into(),
        "/usr/lib/aarch64-linux-gnu".into(),
        "/usr/lib64".into(),
        "/usr/lib".into(),
        "/lib".into(),
    ];
    dirs.iter()
        .map(|d| format!("{d}/{lib}"))
        .find(|p| root.join(p.trim_start_matches('/')).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pid_is_named() {
        let err = Target::from_pid(i32::MAX).unwrap_err();
        assert_eq!(err.to_string(), format!("no process with PID {}", i32::MAX));
    }
}
