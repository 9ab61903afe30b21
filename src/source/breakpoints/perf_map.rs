//! CPython's perf map (`/tmp/perf-PID.map` in the target's root), read as it grows: where each
//! function's trampoline stub is, and whose it is.
use std::sync::Arc;

use crate::cpython::trampoline::perf_map_name;
use crate::target::Target;
use crate::target::{Root, TargetFile};

/// One function's stub: `ADDR SIZE py::QUALNAME:FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stub {
    pub addr: u64,
    pub size: u64,
    pub qualname: String,
    pub file: String,
}

/// The perf map of one target, and how far it has been read.
pub struct PerfMap {
    root: Arc<Root>,
    name: String,
    file: Option<TargetFile>,
    offset: u64,
}

/// Read at most this much per call: a map grows by a line per new function.
const CHUNK: usize = 4 << 20;

impl PerfMap {
    pub fn of(target: &Target) -> PerfMap {
        PerfMap {
            root: target.root.clone(),
            name: perf_map_name(target.pid),
            file: None,
            offset: 0,
        }
    }

    /// The stubs listed since the last call (none while the map does not exist yet: a command
    /// pyprobe started writes it at its first call).
    pub fn new_stubs(&mut self) -> Vec<Stub> {
        if self.file.is_none() {
            self.file = self
                .root
                .dir("/tmp")
                .ok()
                .and_then(|tmp| tmp.open(&self.name).ok());
        }
        let Some(file) = &self.file else {
            return Vec::new();
        };
        let Ok(bytes) = file.read_at(self.offset, CHUNK) else {
            return Vec::new();
        };
        // Only whole lines: the last may be half written.
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += whole as u64;
        String::from_utf8_lossy(&bytes[..whole])
            .lines()
            .filter_map(parse_line)
            .collect()
    }
}

/// `7f0321b967b1 b py::func1:/tmp/app.py` (3.12+ write `py::%U:%U`, the qualified name then
/// the file, which may itself hold colons).
pub fn parse_line(line: &str) -> Option<Stub> {
    let mut parts = line.splitn(3, ' ');
    let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
    let size = u64::from_str_radix(parts.next()?, 16).ok()?;
    let (qualname, file) = parts.next()?.strip_prefix("py::")?.split_once(':')?;
    Some(Stub {
        addr,
        size,
        qualname: qualname.to_string(),
        file: file.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_cpython_writes_them() {
        assert_eq!(
            parse_line("7f0321b967b1 b py::A.run:/srv/a:b.py"),
            Some(Stub {
                addr: 0x7f0321b967b1,
                size: 11,
                qualname: "A.run".into(),
                file: "/srv/a:b.py".into(),
            })
        );
        assert_eq!(parse_line("7f0321b967b1 b [anon]"), None);
        assert_eq!(parse_line("garbage"), None);
    }
}
