//! Reads and writes of single fields in the target's memory, with errors that name the field and
//! tell a process that went away from a layout pyprobe got wrong.
use std::ffi::c_void;
use std::fs;
use std::io;

use crate::error::{Error, Result};
use crate::target::Target;

pub fn read_u64(target: &Target, addr: u64, what: &'static str) -> Result<u64> {
    let bytes = read(target, addr, what)?;
    Ok(u64::from_le_bytes(bytes))
}

pub fn read_i32(target: &Target, addr: u64, what: &'static str) -> Result<i32> {
    let bytes = read(target, addr, what)?;
    Ok(i32::from_le_bytes(bytes))
}

fn read<const N: usize>(target: &Target, addr: u64, what: &'static str) -> Result<[u8; N]> {
    let bytes = target
        .read_memory(addr, N)
        .map_err(|e| memory_error(target.pid, "read", what, addr, e))?;
    bytes.as_slice().try_into().map_err(|_| {
        let short = io::Error::from(io::ErrorKind::UnexpectedEof);
        memory_error(target.pid, "read", what, addr, short)
    })
}

/// Writes `data` at `addr` in process `pid`. Unlike /proc/PID/mem, process_vm_writev honours the
/// target's page protections, so a wrong address fails instead of patching its code.
pub fn write(pid: i32, addr: u64, data: &[u8], what: &'static str) -> Result<()> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` describes `data`, which stays borrowed for the call and which the kernel
    // only reads; `remote` names memory of another process, which the kernel checks itself.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    transferred(pid, "write", what, addr, n, data.len())
}

/// Reads one byte with process_vm_readv: with `write`, the narrowest read-modify-write there is
/// from outside (two system calls, no file to open in between).
pub fn read_byte(pid: i32, addr: u64, what: &'static str) -> Result<u8> {
    let mut byte = 0u8;
    let local = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: 1,
    };
    // SAFETY: `local` describes `byte`, which lives and is exclusively borrowed for the call;
    // `remote` names memory of another process, which the kernel checks itself.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    transferred(pid, "read", what, addr, n, 1)?;
    Ok(byte)
}

/// The result of a process_vm_* call that had to move `want` bytes.
fn transferred(
    pid: i32,
    action: &'static str,
    what: &'static str,
    addr: u64,
    n: isize,
    want: usize,
) -> Result<()> {
    if n < 0 {
        return Err(memory_error(
            pid,
            action,
            what,
            addr,
            io::Error::last_os_error(),
        ));
    }
    if n as usize != want {
        let short = io::Error::from(io::ErrorKind::UnexpectedEof);
        return Err(memory_error(pid, action, what, addr, short));
    }
    Ok(())
}

/// A failed access: the process is gone, we may not look at it, or the address is wrong.
pub fn memory_error(
    pid: i32,
    action: &'static str,
    what: &'static str,
    addr: u64,
    source: io::Error,
) -> Error {
    if gone(pid) {
        return Error::NoSuchProcess(pid);
    }
    if source.kind() == io::ErrorKind::PermissionDenied {
        return Error::NoAccess {
            pid,
            why: format!("cannot {action} its memory (this needs root, or ptrace access to it)"),
        };
    }
    Error::TargetMemory {
        pid,
        action,
        what,
        addr,
        source,
    }
}

/// Whether the process has exited (its /proc entry is gone, or it is a zombie).
pub fn gone(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    matches!(state, Some('Z' | 'X') | None)
}
