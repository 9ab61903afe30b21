//! A few instructions of pyprobe's own in a file no other process maps: what its calibrations
//! put a uprobe or a hardware breakpoint on.
//!
//! A uprobe is set on a file (its inode), so one on pyprobe's own executable is a probe on every
//! pyprobe running that binary: calibrating on it raced with other pyprobes attaching and
//! detaching the same place (two pyprobes died by SIGTRAP in about 230 concurrent runs). A
//! memfd is a file of this process alone; mapped executable, its code is probed in isolation.
use std::ffi::c_void;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;

/// `push %rbp; pop %rbp; ret`: a push first, which the kernel emulates as it does the
/// instructions pyprobe's probes sit on.
const CODE: [u8; 3] = [0x55, 0x5d, 0xc3];
const PAGE: usize = 4096;

/// The code, mapped executable from a memfd of its own.
pub struct PrivateCode {
    file: File,
    addr: *mut c_void,
}

// SAFETY: the mapping is read-only code owned by the struct; calling it from any thread is sound.
unsafe impl Send for PrivateCode {}

impl PrivateCode {
    pub fn new() -> std::io::Result<PrivateCode> {
        // SAFETY: memfd_create with a NUL-terminated name; the fd is owned by the File below.
        let fd = unsafe { libc::memfd_create(c"pyprobe-calibration".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let mut file = unsafe { File::from_raw_fd(fd) };
        let mut page = vec![0xccu8; PAGE];
        page[..CODE.len()].copy_from_slice(&CODE);
        file.write_all(&page)?;
        // SAFETY: maps one page of our file, read-only and executable, at an address the kernel
        // chooses; unmapped in Drop.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(PrivateCode { file, addr })
    }

    /// Where a uprobe on the code goes: this file, at offset 0.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// The code's address (for a hardware breakpoint).
    pub fn addr(&self) -> u64 {
        self.addr as u64
    }

    /// Runs the code once.
    pub fn call(&self) {
        // SAFETY: the page holds CODE, a complete function of the C ABI that takes nothing,
        // touches only the stack and returns.
        let f: extern "C" fn() = unsafe { std::mem::transmute(self.addr) };
        f();
    }
}

impl Drop for PrivateCode {
    fn drop(&mut self) {
        // SAFETY: unmaps the one page mapped in new().
        unsafe { libc::munmap(self.addr, PAGE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_runs_and_is_a_file_of_its_own() {
        let code = PrivateCode::new().expect("memfd code");
        code.call();
        let target = std::fs::read_link(code.path()).unwrap();
        assert!(
            target
                .to_string_lossy()
                .contains("memfd:pyprobe-calibration")
        );
        assert_ne!(code.addr(), 0);
    }
}
