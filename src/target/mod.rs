//! Target discovery: from a PID to the file that holds CPython's probes, its version, and the
//! addresses pyprobe needs in the running process. Its files are reached as it reaches them
//! (`files`): processes in containers and chroots work, and none can lead pyprobe out.
pub mod memory;
pub mod privileges;
pub mod trusted;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod elf;
mod files;
mod maps;
mod modules;

pub use elf::{ElfInfo, ProbeSite, Section, Symbol};
pub use files::{Dir, MAX_FILE_BYTES, Refusal, Root, TargetFile};
pub use maps::{Mapping, is_libpython, parse_maps};
pub(crate) use modules::dict_items;
pub use modules::{ForeignFile, Loaded, non_utf8_files};

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
    /// That file, open and checked: what pyprobe parsed, and what its probes attach to.
    pub file: Arc<TargetFile>,
    /// The target's root directory, held open.
    pub root: Arc<Root>,
    pub version: Option<PyVersion>,
    pub elf: ElfInfo,
    /// Run-time minus link-time address of the interpreter file (0 until it is mapped).
    pub bias: u64,
    /// pyprobe started it with CPython's perf trampoline on (PYTHONPERFSUPPORT=1).
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
        let root = match Root::of(pid) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(no_access(pid)),
            Err(_) => return Err(Error::NoSuchProcess(pid)),
        };
        // /proc/PID/exe and maps name a chroot's files from our root; the target names them
        // without the chroot's prefix.
        let root_seen = fs::read_link(proc_dir.join("root")).unwrap_or_else(|_| "/".into());
        let inside = |p: &str| files::in_root_path(&root_seen, p);
        let refused = |p: &str, why: Refusal| Error::UnsafeFile {
            path: format!("PID {pid}'s {}", inside(p)),
            why: why.to_string(),
        };
        let mapped = |p: &str| {
            let m = maps
                .iter()
                .find(|m| m.path == p && m.offset == 0)
                .or_else(|| maps.iter().find(|m| m.path == p));
            match m {
                Some(m) => files::open_mapped(pid, &root, m, &inside(p)),
                // The executable, not mapped where expected: the kernel's link to it.
                None => files::open_exe(pid),
            }
        };
        let parse = |file: &TargetFile, p: &str| ElfInfo::read_file(file, Path::new(p));

        let exe_file = match mapped(&exe) {
            Ok(f) => Some(f),
            // Gone meanwhile: judged by what else is mapped.
            Err(Refusal::Missing) => None,
            Err(why) => return Err(refused(&exe, why)),
        };
        let exe_elf = exe_file.as_ref().and_then(|f| parse(f, &exe).ok());
        let libpython = maps
            .iter()
            .find(|m| is_libpython(&m.path))
            .map(|m| m.path.clone());
        let exe_has_probes = exe_elf.as_ref().is_some_and(|e| e.has_python_probes());

        let (interpreter, file, elf) = if exe_has_probes {
            (exe.clone(), exe_file.unwrap(), exe_elf.unwrap())
        } else if let Some(lib) = libpython {
            let file = mapped(&lib).map_err(|why| refused(&lib, why))?;
            let elf = parse(&file, &lib)?;
            (lib, file, elf)
        } else if let Some(e) = exe_elf.as_ref()
            && let Some((lib, file)) = find_needed_libpython(e, &root, &inside(&exe))
                .map_err(|(lib, why)| refused(&lib, why))?
        {
            // Spawned and stopped at exec: the loader has not mapped libpython yet.
            let elf = parse(&file, &lib)?;
            (lib, file, elf)
        } else if exe_elf.as_ref().is_some_and(looks_like_python) {
            (exe.clone(), exe_file.unwrap(), exe_elf.unwrap())
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
            file: Arc::new(file),
            root: Arc::new(root),
            exe,
            interpreter,
            version,
            elf,
            bias,
            trampoline_requested: false,
        })
    }

    /// The path libbpf attaches probes by: one that names the interpreter file pyprobe checked
    /// and nothing else, whatever the target does to its own files meanwhile.
    pub fn attach_path(&self) -> Result<PathBuf> {
        self.file.pinned_path().map_err(|e| Error::UnsafeFile {
            path: format!("PID {}'s {}", self.pid, self.interpreter),
            why: e.to_string(),
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
        self.file.read_at(offset, len)
    }

    /// Reads the target's memory (`memory::read_vec`; needs ptrace access: root).
    pub fn read_memory(&self, addr: u64, len: usize) -> std::io::Result<Vec<u8>> {
        memory::read_vec(self.pid, addr, len)
    }

    /// Where a section is in the target's memory now: the interpreter's own, else that of the
    /// first file it has mapped whose name starts with `file_prefix` (an extension module, such
    /// as `_asyncio`), opened as every mapped file is (`files::open_mapped`). None where neither
    /// has it, or the file cannot be read.
    pub fn mapped_section(&self, file_prefix: &str, section: &str) -> Option<(u64, u64)> {
        if let Some(s) = self.elf.section(section) {
            return Some((self.runtime_addr(s.addr), s.size));
        }
        let maps = parse_maps(&fs::read_to_string(format!("/proc/{}/maps", self.pid)).ok()?);
        let m = maps.iter().find(|m| {
            m.offset == 0
                && m.path
                    .rsplit('/')
                    .next()
                    .is_some_and(|n| n.starts_with(file_prefix))
        })?;
        let root_seen =
            fs::read_link(format!("/proc/{}/root", self.pid)).unwrap_or_else(|_| "/".into());
        let inside = files::in_root_path(&root_seen, &m.path);
        let file = files::open_mapped(self.pid, &self.root, m, &inside).ok()?;
        let elf = ElfInfo::read_file(&file, Path::new(&m.path)).ok()?;
        let s = elf.section(section)?;
        Some((s.addr.wrapping_add(elf.load_bias(m.start)), s.size))
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

/// Another user, Yama or a process that made itself undumpable: said with the remedy.
fn no_access(pid: i32) -> Error {
    let why = crate::target::privileges::PtraceFacts::of(pid)
        .refusal()
        .unwrap_or_else(|| {
            "permission denied reading /proc/PID/exe (it made itself undumpable, or runs in \
         another user namespace)"
                .into()
        });
    Error::NoAccess { pid, why }
}

fn looks_like_python(elf: &ElfInfo) -> bool {
    elf.symbol("_PyRuntime").is_some() || elf.py_version_hex.is_some()
}

/// Resolves a DT_NEEDED libpython the way the loader would, in the usual places, inside the
/// target's root (`exe` as the target names it). A candidate that is there but no regular file
/// of an interpreter's size is refused, with its path.
fn find_needed_libpython(
    elf: &ElfInfo,
    root: &Root,
    exe: &str,
) -> std::result::Result<Option<(String, TargetFile)>, (String, Refusal)> {
    let Some(lib) = elf.needed.iter().find(|n| is_libpython(n)) else {
        return Ok(None);
    };
    // /proc/PID/exe names the file without links, so its directory's parent is exact.
    let beside = Path::new(exe)
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("lib").to_string_lossy().into_owned())
        .unwrap_or_default();
    let dirs = [
        beside,
        "/usr/local/lib".into(),
        "/usr/lib/x86_64-linux-gnu".into(),
        "/usr/lib/aarch64-linux-gnu".into(),
        "/usr/lib64".into(),
        "/usr/lib".into(),
        "/lib".into(),
    ];
    for dir in dirs {
        let path = format!("{dir}/{lib}");
        match root.open_regular(&path) {
            Ok(file) => return Ok(Some((path, file))),
            Err(Refusal::Missing) => continue,
            Err(why) => return Err((path, why)),
        }
    }
    Ok(None)
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
