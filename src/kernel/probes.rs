//! The probes of one session: attached disarmed, armed and disarmed by one store each into the
//! `control` map every program reads (bpf/common.bpf.h), and detached together.
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, Object, ProgramMut, UprobeOpts};

use crate::error::{Error, Result};
use crate::overhead::{Meter, trap_ns};
use crate::target::Target;

pub struct Probes {
    links: Vec<Link>,
    control: MapHandle,
    /// Each attached program once, for the cost meter.
    programs: Vec<OwnedFd>,
    /// CPython 3.11's tracing mode is on while these probes are attached.
    tracing_mode: bool,
}

impl Probes {
    /// The probes of a loaded object: none attached yet, and disarmed.
    pub fn of(object: &Object) -> Result<Probes> {
        let map = object
            .maps()
            .find(|m| m.name() == "control")
            .expect("every program includes bpf/common.bpf.h, which defines the control map");
        let control =
            MapHandle::try_from(&map).map_err(|e| Error::bpf("opening the control map", e))?;
        Ok(Probes {
            links: Vec::new(),
            control,
            programs: Vec::new(),
            tracing_mode: false,
        })
    }

    /// Attaches `prog` to `python:<probe>` in the target (libbpf reads argument locations from
    /// the ELF notes and raises the probe's semaphore through the kernel).
    pub fn usdt(&mut self, prog: &ProgramMut<'_>, target: &Target, probe: &str) -> Result<()> {
        let link = prog
            .attach_usdt(target.pid, &target.host_path, "python", probe)
            .map_err(|e| Error::bpf(format!("attaching to python:{probe}"), e))?;
        self.keep(link, prog)
    }

    /// Attaches `prog` to `python:<probe>` in every process that runs the file at `path`, now
    /// or later (no process filter: the kernel raises the probe's semaphore in each of them).
    pub fn usdt_everywhere(
        &mut self,
        prog: &ProgramMut<'_>,
        path: &std::path::Path,
        probe: &str,
    ) -> Result<()> {
        let link = prog
            .attach_usdt(-1, path, "python", probe)
            .map_err(|e| Error::bpf(format!("attaching to python:{probe} system-wide"), e))?;
        self.keep(link, prog)
    }

    /// Attaches `prog` at a file offset of the target's interpreter (a uretprobe with
    /// `ret`); `what` names the place in errors.
    pub fn uprobe(
        &mut self,
        prog: &ProgramMut<'_>,
        target: &Target,
        offset: u64,
        ret: bool,
        what: &str,
    ) -> Result<()> {
        let link = prog
            .attach_uprobe_with_opts(
                target.pid,
                &target.host_path,
                offset as usize,
                UprobeOpts {
                    retprobe: ret,
                    ..Default::default()
                },
            )
            .map_err(|e| {
                let kind = if ret { "uretprobe" } else { "uprobe" };
                Error::bpf(format!("attaching a {kind} to {what}"), e)
            })?;
        self.keep(link, prog)
    }

    /// On 3.11, function__entry fires only in tracing mode, which CPython enters while the line
    /// probe's semaphore is raised. A uprobe placed where execution never comes again (the ELF
    /// entry point, or a library's `.init`, long passed) that names that semaphore makes the
    /// kernel raise it for us, and lower it when the link goes, whatever way pyprobe exits,
    /// without a trap on every line.
    pub fn hold_line_semaphore(&mut self, prog: &ProgramMut<'_>, target: &Target) -> Result<()> {
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
        let link = prog
            .attach_uprobe_with_opts(
                target.pid,
                &target.host_path,
                entry as usize,
                UprobeOpts {
                    ref_ctr_offset: line.semaphore_offset as usize,
                    ..Default::default()
                },
            )
            .map_err(|e| Error::bpf("raising the line probe's semaphore (tracing mode)", e))?;
        self.tracing_mode = true;
        // It never runs: no program to meter.
        self.links.push(link);
        Ok(())
    }

    fn keep(&mut self, link: Link, prog: &ProgramMut<'_>) -> Result<()> {
        self.links.push(link);
        let fd = prog.as_fd();
        if !self
            .programs
            .iter()
            .any(|p| p.as_raw_fd() == fd.as_raw_fd())
        {
            let owned = fd
                .try_clone_to_owned()
                .map_err(|e| Error::bpf("keeping a program", libbpf_rs::Error::from(e)))?;
            self.programs.push(owned);
        }
        Ok(())
    }

    /// What these probes cost the target `pid` from now on.
    pub fn meter(&self, pid: i32) -> Result<Meter> {
        let programs = self
            .programs
            .iter()
            .map(|p| p.try_clone())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::bpf("metering the programs", libbpf_rs::Error::from(e)))?;
        // Tracing mode slows every call the interpreter makes, not only the probes' runs: per
        // run (an entry or a return) about half of the ~400 ns per call measured here, scaled
        // by how this machine's trap compares with the one it was measured beside (700 ns).
        let extra = if self.tracing_mode {
            200.0 * trap_ns() / 700.0
        } else {
            0.0
        };
        Ok(Meter::start(pid, programs, extra))
    }

    /// Every program starts recording, at once.
    pub fn arm(&self) -> Result<()> {
        self.set_armed(true)
    }

    /// Every program stops recording, at once; what they recorded stays readable.
    pub fn disarm(&self) -> Result<()> {
        self.set_armed(false)
    }

    fn set_armed(&self, on: bool) -> Result<()> {
        let value = [u32::from(on), 0];
        let bytes: Vec<u8> = value.iter().flat_map(|v| v.to_ne_bytes()).collect();
        self.control
            .update(&0u32.to_ne_bytes(), &bytes, MapFlags::ANY)
            .map_err(|e| Error::bpf("switching the probes on or off", e))
    }

    /// Removes every probe (the kernel lowers their semaphores); the maps stay readable.
    pub fn detach(&mut self) {
        self.links.clear();
    }
}
