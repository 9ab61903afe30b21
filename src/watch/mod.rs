//! pycount's watchpoint source (`--source watch`, bpf/watch.bpf.h): a hardware data
//! watchpoint per filtered function on the first code unit of its bytecode, in every thread,
//! counts the calls of those functions and costs nothing for any other call; no probe, no
//! trampoline, on CPython 3.8-3.15.
mod calibrate;
mod find;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libbpf_rs::ProgramMut;

use crate::breakpoints::{REGISTERS, events};
use crate::count::FunctionStats;
use crate::error::{Error, Result};
use crate::filter::Pattern;
use crate::function::Function;
use crate::kernel::types::WpKey;
use crate::kernel::{Probes, record};
use crate::overhead::breakpoint_ns;
use crate::pystate::Interpreter;
use crate::target::{Mapping, Target, parse_maps};
use crate::versions::InterpreterLayout;
pub use calibrate::{Hits, Rule, Site};
use find::Found;

/// How often the target's modules are searched again for patterns that matched nothing yet.
const RESCAN: Duration = Duration::from_secs(1);

/// The watchpoints of one session.
pub struct Watch {
    pid: i32,
    patterns: Vec<Pattern>,
    interp: Interpreter,
    rule: Rule,
    /// Watched functions, each armed in every thread.
    watched: Vec<Found>,
    /// The target's mappings, to place the accessing instructions.
    maps: Vec<Mapping>,
    next_scan: Instant,
    /// Code objects found and not watched (told once).
    passed: HashSet<u64>,
    notes: Vec<String>,
}

/// Why `--source watch` cannot serve these options, if it cannot.
pub fn refuse(patterns: &[Pattern], latency: bool, subprocesses: bool) -> Option<String> {
    if patterns.is_empty() {
        return Some("--source watch counts the functions --filter names: give one".into());
    }
    if let Some(p) = patterns.iter().find(|p| p.prefix) {
        return Some(format!(
            "--source watch takes exact names; --filter {p} is a glob"
        ));
    }
    if latency {
        return Some("--source watch counts calls; --latency needs the shared probe".into());
    }
    if subprocesses {
        return Some(
            "--source watch watches one process's threads, not forked ones (--subprocesses)".into(),
        );
    }
    None
}

impl Watch {
    /// Finds the functions the patterns name, and learns which accesses are calls on this
    /// interpreter (`calibrate`); nothing is set yet.
    pub fn open(target: &Target, patterns: &[Pattern]) -> Result<Watch> {
        let mut interp = Interpreter::open(target)?;
        let found = find::find(&mut interp, patterns)?;
        let mut watch = Watch {
            pid: target.pid,
            patterns: patterns.to_vec(),
            interp,
            rule: Rule {
                skip: Default::default(),
                per_call: 1,
            },
            watched: Vec::new(),
            maps: Vec::new(),
            next_scan: Instant::now() + RESCAN,
            passed: HashSet::new(),
            notes: Vec::new(),
        };
        let kept = watch.keep(found);
        if kept.len() > REGISTERS {
            let names: Vec<String> = kept
                .iter()
                .map(|f| format!("{}:{} {}", f.file, f.line, f.name))
                .collect();
            return Err(Error::ProbeUnavailable(format!(
                "--source watch: {} functions match ({}), more than the {REGISTERS} debug \
                 registers of a thread can watch; name them by FILE:NAME",
                kept.len(),
                names.join(", ")
            )));
        }
        watch.watched = kept;
        Ok(watch)
    }

    /// The target's interpreter layout.
    pub fn layout(&self) -> InterpreterLayout {
        self.interp.layout
    }

    /// Sets the learned rule (`calibrate::learn`).
    pub fn set_rule(&mut self, rule: Rule) {
        self.rule = rule;
    }

    /// The functions worth a watchpoint among those found (not yet watched), with a note for
    /// those that cannot be counted.
    fn keep(&mut self, found: Vec<Found>) -> Vec<Found> {
        let mut kept = Vec::new();
        for f in found {
            if self.watched.iter().any(|w| w.code == f.code) || !self.passed.insert(f.code) {
                continue;
            }
            if f.loops_to_start {
                self.notes.push(format!(
                    "{}:{} {} is not counted: its bytecode jumps back to its first instruction \
                     (a loop as its first statement, CPython 3.8-3.10), which a watchpoint \
                     would count on every turn",
                    f.file, f.line, f.name
                ));
                continue;
            }
            if f.shared {
                self.notes.push(format!(
                    "{}:{} {} is not counted: another function has the same bytecode, which \
                     CPython 3.10 keeps once for both (a watchpoint would count the calls of \
                     each)",
                    f.file, f.line, f.name
                ));
                continue;
            }
            kept.push(f);
        }
        kept
    }

    /// Sets a watchpoint on `unit` in every thread now; threads started later inherit it from
    /// the thread that starts them. ENOSPC: the thread's debug registers are taken.
    fn arm_unit(pid: i32, unit: u64, probes: &mut Probes, prog: &ProgramMut<'_>) -> Result<()> {
        for tid in events::threads(pid) {
            match events::open_watch(tid, unit, true) {
                Ok(fd) => probes.breakpoint(prog, fd)?,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    return Err(Error::ProbeUnavailable(format!(
                        "--source watch: thread {tid} of PID {pid} has no debug register free \
                         (each thread has {REGISTERS}; a debugger such as gdb, or another \
                         pyprobe's breakpoints, may hold them)"
                    )));
                }
                Err(e) => {
                    return Err(Error::bpf(
                        format!("setting a hardware watchpoint in thread {tid}"),
                        libbpf_rs::Error::from(e),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Arms every watched function.
    pub fn arm(&mut self, probes: &mut Probes, prog: &ProgramMut<'_>) -> Result<()> {
        for f in &self.watched {
            Self::arm_unit(self.pid, f.unit, probes, prog)?;
        }
        Ok(())
    }

    /// The patterns no watched function matches yet.
    fn unresolved(&self) -> Vec<&Pattern> {
        self.patterns
            .iter()
            .filter(|p| {
                !self.watched.iter().any(|f| {
                    let name = crate::filter::unqualified(&f.qualname);
                    p.matches(&f.file, name, &f.qualname)
                })
            })
            .collect()
    }

    /// Once a second while a pattern matched no function: searches the modules again (a
    /// function defined, a module imported after attach) and watches what it finds.
    pub fn poll(&mut self, probes: &mut Probes, prog: &ProgramMut<'_>) {
        if Instant::now() < self.next_scan || self.unresolved().is_empty() {
            return;
        }
        self.next_scan = Instant::now() + RESCAN;
        let Ok(found) = find::find(&mut self.interp, &self.patterns) else {
            return;
        };
        for f in self.keep(found) {
            let what = format!("{}:{} {}", f.file, f.line, f.name);
            if self.watched.len() >= REGISTERS {
                self.notes.push(format!(
                    "{what} was defined during the session and is not counted: the \
                     {REGISTERS} debug registers are all watching other functions"
                ));
                continue;
            }
            if let Err(e) = Self::arm_unit(self.pid, f.unit, probes, prog) {
                self.notes
                    .push(format!("{what} is not counted: {}", e.one_line()));
                continue;
            }
            self.notes.push(format!(
                "{what} was found during the session: its calls before pyprobe set its \
                 watchpoint (up to a second later) are not counted"
            ));
            self.watched.push(f);
        }
    }

    /// Each watched function's calls so far, from the hits by accessing instruction.
    pub fn stats(&mut self, hits: Hits) -> Vec<FunctionStats> {
        let mut by_unit: HashMap<u64, Vec<(Option<Site>, u64)>> = HashMap::new();
        for (k, v) in hits {
            let key: WpKey = record(&k);
            let n = u64::from_ne_bytes(v[..8].try_into().expect("8 bytes"));
            let mut s = calibrate::site(&self.maps, key.ip);
            if s.is_none() {
                self.maps = parse_maps(
                    &std::fs::read_to_string(format!("/proc/{}/maps", self.pid))
                        .unwrap_or_default(),
                );
                s = calibrate::site(&self.maps, key.ip);
            }
            by_unit.entry(key.addr).or_default().push((s, n));
        }
        self.watched
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let count = self.rule.calls(by_unit.remove(&f.unit)?);
                Some(FunctionStats {
                    function: Function {
                        id: i as u32 + 1,
                        file: f.file.clone(),
                        line: f.line,
                        name: f.name.clone(),
                        ..Default::default()
                    },
                    count,
                    ..Default::default()
                })
            })
            .filter(|f| f.count > 0)
            .collect()
    }

    /// The banner's words for this source and its cost.
    pub fn banner(&self) -> String {
        let n = self.watched.len();
        let mut s = format!(
            "hardware watchpoints on {n} function{}: ~{:.0} us per call of {}, nothing for other calls",
            if n == 1 { "" } else { "s" },
            breakpoint_ns() / 1e3,
            if n == 1 { "it" } else { "them" },
        );
        let waiting: Vec<String> = self.unresolved().iter().map(|p| p.to_string()).collect();
        if !waiting.is_empty() {
            s.push_str(&format!(
                "; no function matches {} yet (searched again each second)",
                waiting.join(", ")
            ));
        }
        s
    }

    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// Learns the calibration rule of the target's interpreter file with `prog` (a loaded
/// `wp_hit` on its own armed `probes`) and the map it counts into.
pub fn calibrate(
    target: &Target,
    layout: InterpreterLayout,
    probes: &mut Probes,
    prog: &ProgramMut<'_>,
    hits: &dyn Fn() -> Result<Hits>,
) -> Result<Rule> {
    let code_unit = |pid: i32, code: u64| -> Result<u64> {
        if layout.version.minor >= 11 {
            return Ok(code + layout.code_adaptive);
        }
        // 3.8-3.10: co_code's bytes, read from the calibration process.
        let mut b = [0u8; 8];
        let path = format!("/proc/{pid}/mem");
        let mem = std::fs::File::open(&path)
            .map_err(|e| Error::ProbeUnavailable(format!("{path}: {e}")))?;
        std::os::unix::fs::FileExt::read_exact_at(&mem, &mut b, code + 48)
            .map_err(|e| Error::ProbeUnavailable(format!("{path}: {e}")))?;
        Ok(u64::from_le_bytes(b) + u64::from(layout.objects.bytes_data))
    };
    let mut watch = |pid: i32, unit: u64| -> Result<()> {
        let fd = events::open_watch(pid, unit, false).map_err(|e| {
            Error::ProbeUnavailable(format!("--source watch: no hardware watchpoint: {e}"))
        })?;
        probes.breakpoint(prog, fd)
    };
    calibrate::learn(target, &code_unit, &mut watch, hits)
}

/// `pyprobe probes`' words for the watchpoint source.
pub fn describe(target: &Target) -> std::result::Result<String, String> {
    let v = target.version.ok_or("the CPython version is unknown")?;
    if v.major != 3 || !(8..=15).contains(&v.minor) {
        return Err(format!(
            "CPython {v}: pyprobe knows the layouts of 3.8 to 3.15"
        ));
    }
    Interpreter::layout_of(target).map_err(|e| e.one_line())?;
    match crate::breakpoints::measure_hit() {
        Some(ns) => Ok(format!(
            "hardware watchpoints on the functions' first bytecode (--source watch): ~{:.0} us \
             per call of them, nothing for other calls",
            ns / 1e3
        )),
        None => Err("this machine gives pyprobe no hardware breakpoint".into()),
    }
}
