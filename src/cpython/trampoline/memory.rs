//! Reads and writes of single fields in the target's memory (`target::memory`), with errors that
//! name the field and tell a process that went away from a layout pyprobe got wrong.
use crate::error::Result;
use crate::target::Target;
use crate::target::memory;

pub fn read_u64(target: &Target, addr: u64, what: &'static str) -> Result<u64> {
    let bytes = read(target, addr, what)?;
    Ok(u64::from_le_bytes(bytes))
}

pub fn read_i32(target: &Target, addr: u64, what: &'static str) -> Result<i32> {
    let bytes = read(target, addr, what)?;
    Ok(i32::from_le_bytes(bytes))
}

fn read<const N: usize>(target: &Target, addr: u64, what: &'static str) -> Result<[u8; N]> {
    let mut bytes = [0; N];
    memory::read(target.pid, addr, &mut bytes)
        .map_err(|e| memory::error(target.pid, "read", what, addr, e))?;
    Ok(bytes)
}

/// Writes `data` at `addr` in process `pid`. Unlike /proc/PID/mem, process_vm_writev honours the
/// target's page protections, so a wrong address fails instead of patching its code.
pub fn write(pid: i32, addr: u64, data: &[u8], what: &'static str) -> Result<()> {
    memory::write(pid, addr, data).map_err(|e| memory::error(pid, "write", what, addr, e))
}

/// Reads one byte with process_vm_readv: with `write`, the narrowest read-modify-write there is
/// from outside (two system calls, no file to open in between).
pub fn read_byte(pid: i32, addr: u64, what: &'static str) -> Result<u8> {
    let mut byte = [0u8];
    memory::read(pid, addr, &mut byte).map_err(|e| memory::error(pid, "read", what, addr, e))?;
    Ok(byte[0])
}
