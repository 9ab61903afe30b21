//! The target's memory, read (and, for the trampoline, written) with process_vm_readv and
//! process_vm_writev: one system call, no file to open, and the target's page protections
//! honoured. One error mapping (`error`) tells a process that went away (`gone`) from one pyprobe
//! may not look at and from an address that is wrong.
use std::ffi::c_void;
use std::io;

use crate::error::Error;

/// Fills `buf` from `addr` in process `pid`; a read that stops short is `UnexpectedEof`.
pub fn read(pid: i32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: `buf` is exclusively borrowed for the call, and the kernel writes at most its length.
    unsafe {
        transfer(
            libc::process_vm_readv,
            pid,
            buf.as_mut_ptr().cast(),
            addr,
            buf.len(),
        )
    }
}

/// `len` bytes at `addr` in process `pid`.
pub fn read_vec(pid: i32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    read(pid, addr, &mut buf)?;
    Ok(buf)
}

/// Writes `data` at `addr` in process `pid`. Unlike /proc/PID/mem, process_vm_writev honours the
/// target's page protections, so a wrong address fails instead of patching its code.
pub fn write(pid: i32, addr: u64, data: &[u8]) -> io::Result<()> {
    // SAFETY: `data` stays borrowed for the call, and process_vm_writev only reads it.
    unsafe {
        transfer(
            libc::process_vm_writev,
            pid,
            data.as_ptr().cast_mut().cast(),
            addr,
            data.len(),
        )
    }
}

/// process_vm_readv's and process_vm_writev's signature.
type VmCall = unsafe extern "C" fn(
    libc::pid_t,
    *const libc::iovec,
    libc::c_ulong,
    *const libc::iovec,
    libc::c_ulong,
    libc::c_ulong,
) -> libc::ssize_t;

/// Moves `len` bytes between `local` here and `addr` in process `pid` with `call`, whole or not
/// at all.
///
/// # Safety
/// `local` must be valid for `len` bytes for the call: writable for a read, readable for a
/// write. The remote side is another process's memory, which the kernel checks itself.
unsafe fn transfer(
    call: VmCall,
    pid: i32,
    local: *mut c_void,
    addr: u64,
    len: usize,
) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: local,
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: len,
    };
    // SAFETY: the caller vouches for `local`; `remote` is checked by the kernel.
    let n = unsafe { call(pid, &local, 1, &remote, 1, 0) };
    whole(n, len)
}

/// The result of a process_vm_* call that had to move `want` bytes.
fn whole(n: isize, want: usize) -> io::Result<()> {
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != want {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    Ok(())
}

/// A failed access (`action`: "read" or "write") of the field `what` at `addr`: the process is
/// gone, we may not look at it, or the address is wrong.
pub fn error(
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
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    matches!(state, Some('Z' | 'X') | None)
}
