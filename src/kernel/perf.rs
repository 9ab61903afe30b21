//! Perf events: hardware execute breakpoints and data watchpoints, one per thread of the target,
//! inherited by the threads each one starts later (what a hit costs is measured in
//! overhead.rs); and the one attr and `perf_event_open` that the CPU-clock sampler (links.rs)
//! and inherited trace events (inherit.rs) open theirs with.
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

const PERF_TYPE_BREAKPOINT: u32 = 5;
const HW_BREAKPOINT_RW: u32 = 3;
const HW_BREAKPOINT_X: u32 = 4;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// perf_event_attr flag bits.
const INHERIT: u64 = 1 << 1;
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;

/// The first 72 bytes of the kernel's `struct perf_event_attr` (PERF_ATTR_SIZE_VER1), all any
/// of pyprobe's perf events sets: `sample_freq` is the period without `freq`; `config1` and
/// `config2` are a breakpoint's address and length. `perf_event_open` fills in `size`.
#[repr(C)]
#[derive(Default)]
pub(super) struct PerfEventAttr {
    pub kind: u32,
    pub size: u32,
    pub config: u64,
    pub sample_freq: u64,
    pub sample_type: u64,
    pub read_format: u64,
    pub flags: u64,
    pub wakeup_events: u32,
    pub bp_type: u32,
    pub config1: u64,
    pub config2: u64,
}

/// perf_event_open(2) of `attr` for thread or process `pid` (-1: any) on `cpu` (-1: any), in
/// no group, its descriptor closed on exec.
pub(super) fn perf_event_open(mut attr: PerfEventAttr, pid: i32, cpu: i32) -> io::Result<OwnedFd> {
    attr.size = std::mem::size_of::<PerfEventAttr>() as u32;
    // SAFETY: perf_event_open reads one perf_event_attr we own, of the size it says.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            pid,
            cpu,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just gave us, owned from here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// An execute breakpoint on `addr` in thread `tid` (0: the calling thread), enabled, firing
/// on every hit in user mode; with `inherit`, threads it starts from now on get their own.
/// ENOSPC: the thread's four debug registers are taken (by other breakpoints, or a debugger).
pub fn open(tid: i32, addr: u64, inherit: bool) -> io::Result<OwnedFd> {
    // What x86 requires of an execute breakpoint: sizeof(long).
    open_kind(tid, addr, inherit, HW_BREAKPOINT_X, 8)
}

/// A data watchpoint on the 2 bytes at `addr` (one bytecode unit), firing on every read or
/// write of them in user mode; otherwise as `open`.
pub fn open_watch(tid: i32, addr: u64, inherit: bool) -> io::Result<OwnedFd> {
    open_kind(tid, addr, inherit, HW_BREAKPOINT_RW, 2)
}

fn open_kind(tid: i32, addr: u64, inherit: bool, bp_type: u32, bp_len: u64) -> io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_BREAKPOINT,
        sample_freq: 1,
        flags: EXCLUDE_KERNEL | EXCLUDE_HV | if inherit { INHERIT } else { 0 },
        bp_type,
        config1: addr,
        config2: bp_len,
        ..Default::default()
    };
    perf_event_open(attr, tid, -1)
}

/// The threads of `pid` now.
pub fn threads(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut tids: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    tids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_is_the_kernels_first_version_1() {
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 72);
    }
}
