//! The probes of one session: attached disarmed, armed and disarmed by one store each into the
//! `control` map every program reads (bpf/common.bpf.h), and detached together.
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};

use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, Object, ProgramMut, UprobeOpts};

use super::inherit::{self, Place, TraceEvent, UsdtSpecs};
use super::perf::{self, PerfEventAttr};
use crate::error::{Error, Result};
use crate::kernel::overhead::{Meter, Trap};
use crate::target::Target;

pub struct Probes {
    /// Each link with the program it runs (its descriptor number), so that one program's
    /// links can go alone (`detach_program`).
    links: Vec<(Link, i32)>,
    /// With `inherit`, the trace events the links' perf events use: dropped after the links.
    events: Vec<TraceEvent>,
    /// Probes are inherited by the processes the target forks (`--subprocesses`).
    inherit: bool,
    /// Where the argument specs of the USDT probes pyprobe attaches itself go (`inherit`).
    usdt_specs: Option<UsdtSpecs>,
    control: MapHandle,
    /// Each attached program once (by the descriptor number it is attached by), with the trap
    /// that runs it, for the cost meter: a program counted twice would double its cost.
    programs: Vec<(i32, OwnedFd, Trap)>,
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
        let usdt_specs = object
            .maps()
            .find(|m| m.name() == "__bpf_usdt_specs")
            .and_then(|m| MapHandle::try_from(&m).ok())
            .map(UsdtSpecs::of);
        Ok(Probes {
            links: Vec::new(),
            events: Vec::new(),
            inherit: false,
            usdt_specs,
            control,
            programs: Vec::new(),
            tracing_mode: false,
        })
    }

    /// From now on, probes are attached so that every process the target forks later inherits
    /// them, its calls seen from its first instruction (src/kernel/inherit.rs).
    pub fn inherit_into_children(&mut self) {
        self.inherit = true;
    }

    /// Attaches `prog` to `python:<probe>` in the target (libbpf reads argument locations from
    /// the ELF notes and raises the probe's semaphore through the kernel).
    pub fn usdt(&mut self, prog: &ProgramMut<'_>, target: &Target, probe: &str) -> Result<()> {
        // libbpf refuses such a site with ESRCH ("No such process"): say what is wrong instead.
        if let Some(site) = target
            .elf
            .python_probes()
            .find(|p| p.name == probe && p.semaphore != 0 && p.semaphore_offset == 0)
        {
            return Err(Error::BadElf {
                path: target.interpreter.clone().into(),
                why: format!(
                    "the USDT note of python:{probe} puts its semaphore at {:#x}, outside the \
                     file's loaded segments (a malformed note)",
                    site.semaphore
                ),
            });
        }
        if self.inherit {
            return self.usdt_inherited(prog, target, probe);
        }
        let link = prog
            .attach_usdt(target.pid, target.attach_path()?, "python", probe)
            .map_err(|e| Error::bpf(format!("attaching to python:{probe}"), e))?;
        self.keep(link, prog)
    }

    /// Each site of `python:<probe>`, attached as an inherited trace event, its arguments'
    /// spec stored where `bpf_usdt_arg` finds it by the link's cookie.
    fn usdt_inherited(
        &mut self,
        prog: &ProgramMut<'_>,
        target: &Target,
        probe: &str,
    ) -> Result<()> {
        let path = target.attach_path()?;
        let sites: Vec<_> = target
            .elf
            .python_probes()
            .filter(|p| p.name == probe)
            .cloned()
            .collect();
        for site in sites {
            let offset = target
                .elf
                .file_offset(site.pc)
                .ok_or_else(|| Error::BadElf {
                    path: target.interpreter.clone().into(),
                    why: format!(
                        "python:{probe} at {:#x} is outside the file's segments",
                        site.pc
                    ),
                })?;
            let specs = self
                .usdt_specs
                .as_mut()
                .expect("every program includes usdt.bpf.h, which defines the spec map");
            let cookie = specs.add(&site.args)?;
            let place = Place {
                path: &path,
                offset,
                ref_ctr: (site.semaphore != 0).then_some(site.semaphore_offset),
            };
            self.inherited(prog, target.pid, &place, cookie)?;
        }
        Ok(())
    }

    fn inherited(
        &mut self,
        prog: &ProgramMut<'_>,
        pid: i32,
        place: &Place<'_>,
        cookie: u64,
    ) -> Result<()> {
        let (link, event) = inherit::attach(prog, pid, place, cookie)?;
        self.events.push(event);
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

    /// Attaches `prog` at a file offset of the target's interpreter; `what` names the place in
    /// errors. Never a uretprobe: the kernel holds one for as long as any call it saw is still
    /// running, and a command whose threads kept calls open made detaching wait for good (and
    /// every other uprobe user of the host with it); returns are probed where the function
    /// returns instead (src/source/exits.rs).
    pub fn uprobe(
        &mut self,
        prog: &ProgramMut<'_>,
        target: &Target,
        offset: u64,
        what: &str,
    ) -> Result<()> {
        self.uprobe_with_cookie(prog, target, offset, 0, what)
    }

    /// `uprobe`, with a cookie the program reads (`bpf_get_attach_cookie`).
    pub fn uprobe_with_cookie(
        &mut self,
        prog: &ProgramMut<'_>,
        target: &Target,
        offset: u64,
        cookie: u64,
        what: &str,
    ) -> Result<()> {
        if self.inherit {
            let place = Place {
                path: &target.attach_path()?,
                offset,
                ref_ctr: None,
            };
            return self.inherited(prog, target.pid, &place, cookie);
        }
        let link = prog
            .attach_uprobe_with_opts(
                target.pid,
                target.attach_path()?,
                offset as usize,
                UprobeOpts {
                    cookie,
                    ..Default::default()
                },
            )
            .map_err(|e| Error::bpf(format!("attaching a uprobe to {what}"), e))?;
        self.keep(link, prog)
    }

    /// Attaches `prog` to a CPU-clock perf event on every online CPU, each firing `rate_hz`
    /// times per second of that CPU's time, whatever runs there: the program picks the target's
    /// threads by pid, which also covers threads the target starts later. The links own the
    /// perf events (libbpf closes them with the link).
    pub fn cpu_clock(&mut self, prog: &ProgramMut<'_>, rate_hz: u32) -> Result<()> {
        for cpu in online_cpus()? {
            let attr = PerfEventAttr {
                kind: PERF_TYPE_SOFTWARE,
                config: PERF_COUNT_SW_CPU_CLOCK,
                sample_freq: u64::from(rate_hz),
                flags: PERF_ATTR_FLAG_FREQ,
                ..Default::default()
            };
            let fd = perf::perf_event_open(attr, -1, cpu).map_err(|e| {
                Error::bpf(
                    format!("opening the CPU-clock perf event of CPU {cpu}"),
                    libbpf_rs::Error::from(e),
                )
            })?;
            // On failure the fd is dropped: closed, as no link took it.
            let link = prog
                .attach_perf_event(fd.as_raw_fd())
                .map_err(|e| Error::bpf(format!("attaching to the perf event of CPU {cpu}"), e))?;
            // The link owns the perf event now (libbpf closes it with the link).
            let _ = fd.into_raw_fd();
            self.links.push((link, -1));
        }
        Ok(())
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
        self.tracing_mode = true;
        if self.inherit {
            let place = Place {
                path: &target.attach_path()?,
                offset: entry,
                ref_ctr: Some(line.semaphore_offset),
            };
            let (link, event) = inherit::attach(prog, target.pid, &place, 0)?;
            self.events.push(event);
            self.links.push((link, -1));
            return Ok(());
        }
        let link = prog
            .attach_uprobe_with_opts(
                target.pid,
                target.attach_path()?,
                entry as usize,
                UprobeOpts {
                    ref_ctr_offset: line.semaphore_offset as usize,
                    ..Default::default()
                },
            )
            .map_err(|e| Error::bpf("raising the line probe's semaphore (tracing mode)", e))?;
        // It never runs: no program to meter.
        self.links.push((link, -1));
        Ok(())
    }

    /// Attaches a BTF tracepoint program (`tp_btf/NAME` in its section). Not metered: it runs
    /// on the kernel's events, not the target's calls.
    pub fn trace(&mut self, prog: &ProgramMut<'_>, name: &str) -> Result<()> {
        let link = prog
            .attach()
            .map_err(|e| Error::bpf(format!("attaching to the {name} tracepoint"), e))?;
        self.links.push((link, -1));
        Ok(())
    }

    /// Attaches `prog` to a perf event the caller opened (a hardware breakpoint), which the
    /// link then owns; metered at a debug exception's cost.
    pub fn breakpoint(&mut self, prog: &ProgramMut<'_>, event: OwnedFd) -> Result<()> {
        let link = prog
            .attach_perf_event(event.into_raw_fd())
            .map_err(|e| Error::bpf("attaching to a hardware breakpoint", e))?;
        self.keep_as(link, prog, Trap::Breakpoint)
    }

    /// Removes the links of one program, the others staying (the maps stay readable).
    pub fn detach_program(&mut self, prog: &ProgramMut<'_>) {
        let fd = prog.as_fd().as_raw_fd();
        self.links.retain(|(_, p)| *p != fd);
    }

    fn keep(&mut self, link: Link, prog: &ProgramMut<'_>) -> Result<()> {
        self.keep_as(link, prog, Trap::Uprobe)
    }

    fn keep_as(&mut self, link: Link, prog: &ProgramMut<'_>, trap: Trap) -> Result<()> {
        let fd = prog.as_fd();
        self.links.push((link, fd.as_raw_fd()));
        // By the program's own descriptor, not the copy kept (a number of its own): a program
        // attached to several threads' breakpoints or several sites is one set of run counts.
        if !self.programs.iter().any(|(p, _, _)| *p == fd.as_raw_fd()) {
            let owned = fd
                .try_clone_to_owned()
                .map_err(|e| Error::bpf("keeping a program", libbpf_rs::Error::from(e)))?;
            self.programs.push((fd.as_raw_fd(), owned, trap));
        }
        Ok(())
    }

    /// What these probes cost the target `pid` from now on.
    pub fn meter(&self, pid: i32) -> Result<Meter> {
        let programs = self
            .programs
            .iter()
            .map(|(_, p, trap)| p.try_clone().map(|p| (p, *trap)))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::bpf("metering the programs", libbpf_rs::Error::from(e)))?;
        Ok(Meter::start(pid, programs, self.tracing_mode))
    }

    /// Gives `meter` the programs attached since it started (breakpoints follow functions that
    /// run for the first time; unmetered, their hits went missing from every estimate).
    pub fn update_meter(&self, meter: &mut Meter) -> Result<()> {
        for (_, p, trap) in self.programs.iter().skip(meter.programs()) {
            let p = p
                .try_clone()
                .map_err(|e| Error::bpf("metering the programs", libbpf_rs::Error::from(e)))?;
            meter.add(p, *trap);
        }
        Ok(())
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
        self.events.clear();
    }
}

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
/// `freq`: `sample_freq` is a rate in Hz, not a period.
const PERF_ATTR_FLAG_FREQ: u64 = 1 << 10;

/// The online CPUs, from /sys/devices/system/cpu/online (`0-3,5`).
fn online_cpus() -> Result<Vec<i32>> {
    let path = "/sys/devices/system/cpu/online";
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.as_ref(), e))?;
    Ok(parse_cpu_list(&text))
}

fn parse_cpu_list(text: &str) -> Vec<i32> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<i32>(), hi.parse::<i32>()) {
            cpus.extend(lo..=hi);
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-1\n"), [0, 1]);
        assert_eq!(parse_cpu_list("0,2-4,7"), [0, 2, 3, 4, 7]);
    }
}
