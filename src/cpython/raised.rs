//! Where CPython raises, seen from outside: PyTraceBack_Here's place in the target's file (the
//! eval loop calls it once for each Python frame an exception passes) and where each version
//! keeps the raised exception, for `pyprobe exceptions`' uprobe.
use crate::abi::types::ExcLayout;
use crate::error::{Error, Result};
use crate::target::Target;

/// Where exceptions are seen on this target: where its version keeps the raised exception, and
/// PyTraceBack_Here's file offset for the uprobe; else why not, in one line.
pub fn site(target: &Target) -> Result<(ExcLayout, u64)> {
    let version = target.version.ok_or_else(|| {
        Error::ProbeUnavailable(format!(
            "pyprobe cannot tell which CPython {} is: exceptions needs 3.8-3.15",
            target.interpreter
        ))
    })?;
    let exc = exc_layout(version.minor as u32).ok_or_else(|| {
        Error::ProbeUnavailable(format!(
            "pyprobe exceptions knows where CPython 3.8-3.15 keep the raised exception, not \
             CPython {version}"
        ))
    })?;
    let symbol = target.elf.symbol_info("PyTraceBack_Here").ok_or_else(|| {
        Error::ProbeUnavailable(format!(
            "{} has no PyTraceBack_Here symbol (in .dynsym or .symtab)",
            target.interpreter
        ))
    })?;
    let offset = target.elf.file_offset(symbol.addr).ok_or_else(|| {
        Error::ProbeUnavailable(format!(
            "{}: PyTraceBack_Here is not in the file",
            target.interpreter
        ))
    })?;
    Ok((exc, offset))
}

/// Where the raised exception is, per minor version: PyThreadState's curexc_type (<= 3.11) or
/// current_exception (3.12+), from each version's headers (3.8-3.13, offsetof) and measured in
/// sid's 3.14 and 3.15 builds (gdb at PyTraceBack_Here: the word whose type is the raised one).
pub fn exc_layout(minor: u32) -> Option<ExcLayout> {
    let (tstate_exc, exc_traceback, frame_object_frame) = match minor {
        8..=10 => (88, 0, 0),
        11 => (96, 0, 24),
        12 => (96, 40, 24),
        13 | 14 => (112, 40, 24),
        15 => (136, 40, 24),
        _ => return None,
    };
    Some(ExcLayout {
        tstate_exc,
        exc_traceback,
        frame_object_frame,
        tb_frame: 24,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_version_has_a_layout() {
        for minor in 8..=15 {
            let l = exc_layout(minor).unwrap();
            assert_eq!(l.tb_frame, 24);
            // The instance keeps its traceback from 3.12 on; before, the thread state does.
            assert_eq!(l.exc_traceback != 0, minor >= 12);
            assert_eq!(l.frame_object_frame != 0, minor >= 11);
        }
        assert!(exc_layout(7).is_none());
        assert!(exc_layout(16).is_none());
    }
}
