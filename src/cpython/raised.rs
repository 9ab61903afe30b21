//! Where CPython raises, seen from outside: PyTraceBack_Here's place in the target's file (the
//! eval loop calls it once for each Python frame an exception passes) and where each version
//! keeps the raised exception (`versions::exc_layout`), for `pyprobe exceptions`' uprobe.
use crate::abi::types::ExcLayout;
use crate::error::{Error, Result};
use crate::target::Target;
use crate::versions::exc_layout;

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
