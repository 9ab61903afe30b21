//! Everything that differs between CPython versions, in one place: which probes fire
//! (here); where things live in memory, one table with a row per version (table.rs) and the
//! build's own map of its structs on 3.13+ (debug_offsets.rs) laid over it; the views of that
//! table the eval-frame source, audit and `sys.modules` read (layouts.rs) and the stack walk
//! reads (interpreter.rs); asyncio's tasks (asyncio.rs); and what is the same in every version
//! (objects.rs).
mod asyncio;
mod debug_offsets;
mod interpreter;
mod layouts;
pub mod objects;
mod table;

use std::fmt;

pub use asyncio::{
    ASYNCIO_DEBUG_LEN, AsyncioDebug, CoroFrame, TaskLayout, TaskSet, ValueStack, task_layout,
};
pub use debug_offsets::{
    CodeOffsets, DebugOffsets, DebuggerOffsets, FrameOffsets, InterpreterOffsets, RuntimeOffsets,
    ThreadOffsets, UnicodeOffsets,
};
pub use interpreter::InterpreterLayout;
pub use layouts::{
    DictEntries, ModulesLayout, eval_layout, eval_layout_of_build, exc_layout, frame_layout,
    modules_layout, object_layout, qualname_layout,
};
pub use table::{Gil, Instr, LineTable, VersionLayout, Walk};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PyVersion {
    pub major: u8,
    pub minor: u8,
    pub micro: Option<u8>,
}

impl PyVersion {
    pub const fn new(major: u8, minor: u8) -> PyVersion {
        PyVersion {
            major,
            minor,
            micro: None,
        }
    }

    /// From PY_VERSION_HEX (the exported `Py_Version` of 3.11+).
    pub fn from_hex(hex: u32) -> PyVersion {
        PyVersion {
            major: (hex >> 24) as u8,
            minor: (hex >> 16) as u8,
            micro: Some((hex >> 8) as u8),
        }
    }

    /// From a file name such as `python3.11`, `libpython3.9.so.1.0` or `python3.15d`.
    pub fn from_file_name(name: &str) -> Option<PyVersion> {
        let at = name.find("python")? + "python".len();
        let rest = &name[at..];
        let mut parts = rest.splitn(2, '.');
        let major: u8 = parts.next()?.parse().ok()?;
        let minor_digits: String = parts
            .next()?
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        Some(PyVersion::new(major, minor_digits.parse().ok()?))
    }

    fn minor_is(&self, lo: u8, hi: u8) -> bool {
        self.major == 3 && self.minor >= lo && self.minor <= hi
    }
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.micro {
            Some(m) => write!(f, "{}.{}.{}", self.major, self.minor, m),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

/// Whether a probe is usable on a version, and why not when it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Fires,
    /// Fires, with a caveat the user should know.
    Caveat(&'static str),
    /// Present but does not fire (or not reliably) on this version.
    Broken(&'static str),
    /// The probe is not compiled into this version at all.
    NotInVersion(&'static str),
}

impl Support {
    pub fn works(&self) -> bool {
        matches!(self, Support::Fires | Support::Caveat(_))
    }
}

/// Which of CPython's probes fire, and how, per probe and version (checked on every build the
/// tests run: Debian's, pyenv's and the sid, bullseye and trixie chroots).
pub fn probe_support(v: PyVersion, probe: &str) -> Support {
    match probe {
        "function__entry" if v.minor_is(11, 11) => Support::Caveat(
            "fires only while the interpreter is in tracing mode; pyprobe switches it on with the line probe's semaphore when it needs entries",
        ),
        "function__entry" | "function__return" if v.minor_is(12, 14) => {
            Support::NotInVersion("CPython 3.12-3.14 have no function probes")
        }
        "function__return" if v >= PyVersion::new(3, 15) => Support::Caveat(
            "does not fire when a frame exits by an exception; pyprobe counts entries",
        ),
        "line" if v >= PyVersion::new(3, 12) => {
            Support::NotInVersion("the line probe exists only up to CPython 3.11")
        }
        "line" if v.minor_is(11, 11) => Support::Caveat(
            "switches the interpreter into tracing mode (slower) while attached; upstream reported crashes with it (python/cpython#98894)",
        ),
        "import__find__load__start" | "import__find__load__done" if v < PyVersion::new(3, 7) => {
            Support::NotInVersion("import probes arrived in CPython 3.7")
        }
        "audit" if v < PyVersion::new(3, 8) => {
            Support::NotInVersion("audit hooks arrived in CPython 3.8")
        }
        _ => Support::Fires,
    }
}

/// A name that CPython's own code behind a probe encodes to UTF-8 (`PyUnicode_AsUTF8`) before
/// the probe fires, leaving the error set when the name is not UTF-8: a file or module named
/// with bytes that are not (decoded with surrogateescape, as on Linux). The program then fails
/// where it happens to be (`SystemError: ... returned a result with an exception set`, after the
/// `UnicodeEncodeError`), which usually kills it. Measured with bpftrace and pyprobe on Debian's
/// 3.11.2, bullseye's 3.9.2, sid's 3.13-3.15 and trixie's 3.13.5; CPython 3.15 passes NULL for
/// such a file name instead (the function is shown as `<unknown>`), and 3.12-3.14 have no
/// function or line probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameHazard {
    /// `co_filename` of the code running (function__entry, function__return, line: 3.6-3.11;
    /// the line probe's semaphore alone, held for 3.11's tracing mode, is enough).
    FileNames,
    /// The name of the module being imported (import__find__load__start/done, every version).
    ModuleNames,
}

pub fn name_hazard(v: PyVersion, probe: &str) -> Option<NameHazard> {
    match probe {
        "function__entry" | "function__return" | "line" if v.minor_is(6, 11) => {
            Some(NameHazard::FileNames)
        }
        "import__find__load__start" | "import__find__load__done" => Some(NameHazard::ModuleNames),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_which_probes_encode_names() {
        let v = |m| PyVersion::new(3, m);
        assert_eq!(
            name_hazard(v(11), "function__return"),
            Some(NameHazard::FileNames)
        );
        assert_eq!(name_hazard(v(9), "line"), Some(NameHazard::FileNames));
        assert_eq!(name_hazard(v(15), "function__entry"), None);
        assert_eq!(name_hazard(v(11), "gc__start"), None);
        assert_eq!(name_hazard(v(11), "audit"), None);
        assert_eq!(
            name_hazard(v(14), "import__find__load__start"),
            Some(NameHazard::ModuleNames)
        );
    }

    #[test]
    fn parses_versions_from_file_names() {
        assert_eq!(
            PyVersion::from_file_name("python3.11"),
            Some(PyVersion::new(3, 11))
        );
        assert_eq!(
            PyVersion::from_file_name("libpython3.9.so.1.0"),
            Some(PyVersion::new(3, 9))
        );
        assert_eq!(
            PyVersion::from_file_name("python3.15d"),
            Some(PyVersion::new(3, 15))
        );
        assert_eq!(PyVersion::from_file_name("python3"), None);
        assert_eq!(PyVersion::from_file_name("bash"), None);
    }

    #[test]
    fn parses_py_version_hex() {
        let v = PyVersion::from_hex(0x030b02f0);
        assert_eq!((v.major, v.minor, v.micro), (3, 11, Some(2)));
        assert_eq!(v.to_string(), "3.11.2");
    }

    #[test]
    fn knows_which_probes_fire() {
        let v311 = PyVersion::new(3, 11);
        assert!(probe_support(v311, "function__return").works());
        assert!(matches!(
            probe_support(v311, "function__entry"),
            Support::Caveat(_)
        ));
        assert!(!probe_support(PyVersion::new(3, 13), "function__entry").works());
        assert!(!probe_support(PyVersion::new(3, 12), "line").works());
        assert!(probe_support(PyVersion::new(3, 13), "gc__start").works());
        assert!(!probe_support(PyVersion::new(3, 7), "audit").works());
        assert!(probe_support(PyVersion::new(3, 15), "function__entry").works());
    }
}
