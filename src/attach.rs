//! Attaching BPF programs to a target's probes; every failure names the probe it was for.
use libbpf_rs::{Link, ProgramMut, UprobeOpts};

use crate::error::{Error, Result};
use crate::target::Target;

/// Attaches `prog` to `python:<probe>` in the target (libbpf reads argument locations from the
/// ELF notes and raises the probe's semaphore through the kernel).
pub fn usdt(prog: &ProgramMut<'_>, target: &Target, probe: &str) -> Result<Link> {
    prog.attach_usdt(target.pid, &target.host_path, "python", probe)
        .map_err(|e| Error::bpf(format!("attaching to python:{probe}"), e))
}

/// On 3.11, function__entry fires only in tracing mode, which CPython enters while the line
/// probe's semaphore is raised. A uprobe placed where execution never comes again (the ELF
/// entry point, or a library's `.init`, long passed) that names that semaphore makes the kernel raise it for us, and lower it
/// when the link goes, whatever way pyprobe exits, without a trap on every line.
pub fn hold_line_semaphore(prog: &ProgramMut<'_>, target: &Target) -> Result<Link> {
    let line = target.elf.probe("line").ok_or_else(|| {
        Error::ProbeUnavailable(format!(
            "{} has no line probe, whose semaphore switches on tracing mode",
            target.interpreter
        ))
    })?;
    let entry = target.elf.run_once_offset().ok_or_else(|| {
        Error::ProbeUnavailable(format!(
            "{}: no entry point or .init to hold the line semaphore from",
            target.interpreter
        ))
    })?;
    prog.attach_uprobe_with_opts(
        target.pid,
        &target.host_path,
        entry as usize,
        UprobeOpts {
            ref_ctr_offset: line.semaphore_offset as usize,
            ..Default::default()
        },
    )
    .map_err(|e| Error::bpf("raising the line probe's semaphore (tracing mode)", e))
}
