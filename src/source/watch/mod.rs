//! pycount's watchpoint source (`--source watch`, bpf/watch.bpf.h): a hardware data
//! watchpoint per filtered function on the first code unit of its bytecode, in every thread,
//! counts the calls of those functions and costs nothing for any other call; no probe, no
//! trampoline, on CPython 3.8-3.15.
mod calibrate;
mod find;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libbpf_rs::ProgramMut;

use crate::abi::record;
use crate::abi::types::WpKey;
use crate::cpython::pystate::Interpreter;
use crate::error::{Error, Result};
use crate::kernel::Probes;
use crate::kernel::overhead::breakpoint_ns;
use crate::kernel::perf;
use crate::source::breakpoints::REGISTERS;
use crate::target::{Mapping, Target, parse_maps};
use crate::trace::calls::FunctionStats;
use crate::trace::filter::Pattern;
use crate::trace::function::Function;
use crate::versions::InterpreterLayout;
pub use calibrate::{Hits, Rule, Site};
use find::Found;

/// How often the target's modules are searched again for patterns that matched nothing yet.
const RESCAN: Duration = Duration::from_secs(1);
/// A command's interpreter is looked at this often until it has started, and its modules
/// searched this often for its first seconds (its script defines its functions then).
const RESCAN_STARTING: Duration = Duration::from_millis(100);
const STARTING: Duration = Duration::from_secs(3);
/// Past that, a search runs each second only when `sys.modules` changed size (a module
/// imported), and at least this often otherwise (a function defined later in a module already
/// there): a big application's modules cost thousands of reads to walk.
const FULL_RESCAN: Duration = Duration::from_secs(10);

/// The watchpoints of one session.
pub struct Watch {
    pid: i32,
    patterns: Vec<Pattern>,
    /// The target as opened: a command held at exec has not mapped a shared libpython yet,
    /// so the interpreter is placed again until it has started.
    target: Target,
    interp: Interpreter,
    /// The interpreter has started (its modules can be searched).
    started: bool,
    /// When it was first seen started.
    started_at: Option<Instant>,
    rule: Rule,
    /// Watched functions, each armed in every thread.
    watched: Vec<Found>,
    /// The target's mappings, to place the accessing instructions.
    maps: Vec<Mapping>,
    next_scan: Instant,
    /// When the modules were last searched, and how many there were then.
    last_full: Instant,
    last_modules: Option<u64>,
    /// Code objects found and not watched (told once).
    passed: HashSet<u64>,
    notes: Vec<String>,
}

/// Why `--source watch` cannot serve these options, if it cannot.
pub fn refuse(patterns: &[Pattern], latency: bool, subprocesses: bool) -> Option<String> {
    if patterns.is_empty() {
        return Some("--source watch counts the functions --filter names: give one".into());
    }
    if latency {
        return Some(
            "--source watch counts calls; --latency needs the shared probe (--source probe), \
             or on 3.12-3.14 with the perf trampoline hardware breakpoints (--source \
             breakpoints)"
                .into(),
        );
    }
    if subprocesses {
        return Some(
            "--source watch watches one process's threads, not forked ones (--subprocesses)".into(),
        );
    }
    None
}

impl Watch {
    /// Finds the functions the patterns name (none while the interpreter has not started);
    /// nothing is set yet. More matching functions than registers: `too_many` says so.
    pub fn open(target: &Target, patterns: &[Pattern]) -> Result<Watch> {
        let mut interp = Interpreter::open(target)?;
        let modules = find::modules_len(&interp);
        let found = find::find(&mut interp, patterns)?;
        let started = found.is_some();
        let mut watch = Watch {
            pid: target.pid,
            patterns: patterns.to_vec(),
            target: target.clone(),
            interp,
            started,
            started_at: started.then(Instant::now),
            rule: Rule {
                skip: Default::default(),
                per_call: 1,
            },
            watched: Vec::new(),
            maps: Vec::new(),
            next_scan: Instant::now() + RESCAN,
            last_full: Instant::now(),
            last_modules: None,
            passed: HashSet::new(),
            notes: Vec::new(),
        };
        watch.last_modules = modules;
        if !started {
            watch.next_scan = Instant::now() + RESCAN_STARTING;
        }
        watch.watched = watch.keep(found.unwrap_or_default());
        Ok(watch)
    }

    /// Whether the interpreter had started when the watch opened (a command held at exec has
    /// not).
    pub fn started(&self) -> bool {
        self.started
    }

    /// How many functions match, where more than the registers can watch.
    pub fn too_many(&self) -> Option<usize> {
        (self.watched.len() > REGISTERS).then_some(self.watched.len())
    }

    /// The refusal for more matching functions than registers, naming them.
    pub fn too_many_error(&self) -> Option<Error> {
        let n = self.too_many()?;
        let names: Vec<String> = self
            .watched
            .iter()
            .map(|f| format!("{}:{} {}", f.file, f.line, f.name))
            .collect();
        Some(Error::ProbeUnavailable(format!(
            "--source watch: {n} functions match ({}), more than the {REGISTERS} debug \
             registers of a thread can watch; name them by FILE:NAME",
            names.join(", ")
        )))
    }

    /// Whether a glob matched nothing yet (its functions may be any number).
    pub fn glob_unresolved(&self) -> bool {
        self.unresolved().iter().any(|p| p.prefix)
    }

    /// The code objects found and their watch addresses (`pyprobe probes --filter`).
    pub fn listing(&self) -> Vec<String> {
        self.watched
            .iter()
            .map(|f| {
                format!(
                    "{}:{} {}: code object {:#x}, watched unit {:#x}",
                    f.file, f.line, f.qualname, f.code, f.unit
                )
            })
            .collect()
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
        for tid in perf::threads(pid) {
            match perf::open_watch(tid, unit, true) {
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
        self.read_maps();
        Ok(())
    }

    /// The target's mappings now, to place the accessing instructions even once it has
    /// exited (a hit at an unknown place would count as a call).
    fn read_maps(&mut self) {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{}/maps", self.pid)) {
            let maps = parse_maps(&text);
            if !maps.is_empty() {
                self.maps = maps;
            }
        }
    }

    /// A command's interpreter placed again once its loader has mapped it (a shared
    /// libpython is not mapped at exec); whether it has started.
    fn check_started(&mut self) -> bool {
        if self.started {
            return true;
        }
        if let Ok(t) = Target::from_pid(self.pid)
            && t.interpreter == self.target.interpreter
            && let Ok(i) = Interpreter::open(&t)
        {
            self.interp = i;
            self.target = t;
        }
        if self.interp.main_interp().is_some() {
            self.started = true;
            self.started_at = Some(Instant::now());
        }
        self.started
    }

    /// The patterns no watched function matches yet.
    fn unresolved(&self) -> Vec<&Pattern> {
        self.patterns
            .iter()
            .filter(|p| {
                !self.watched.iter().any(|f| {
                    let name = crate::trace::filter::unqualified(&f.qualname);
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
        let starting =
            !self.check_started() || self.started_at.is_some_and(|at| at.elapsed() < STARTING);
        self.next_scan = Instant::now() + if starting { RESCAN_STARTING } else { RESCAN };
        let modules = find::modules_len(&self.interp);
        if !starting && modules == self.last_modules && self.last_full.elapsed() < FULL_RESCAN {
            return;
        }
        self.last_modules = modules;
        self.last_full = Instant::now();
        let Ok(Some(found)) = find::find(&mut self.interp, &self.patterns) else {
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
            self.read_maps();
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
                self.read_maps();
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

    /// Bit i set where pattern i matches a watched function that has been called (as the
    /// kernel's filter records it for the other sources: `filter::unmatched`).
    pub fn pattern_hits(&self, counted: &[FunctionStats]) -> u32 {
        let mut hits = 0;
        for (i, p) in self.patterns.iter().enumerate() {
            let ran = self.watched.iter().enumerate().any(|(k, f)| {
                counted
                    .iter()
                    .any(|c| c.function.id == k as u32 + 1 && c.count > 0)
                    && p.matches(
                        &f.file,
                        crate::trace::filter::unqualified(&f.qualname),
                        &f.qualname,
                    )
            });
            if ran {
                hits |= 1 << i;
            }
        }
        hits
    }

    /// The banner's words for this source and its cost.
    pub fn banner(&self) -> String {
        if !self.started {
            return format!(
                "hardware watchpoints on the functions as the command defines them: searched \
                 every {} ms for its first {} s, then each second; ~{:.0} us per call of them, \
                 nothing for other calls",
                RESCAN_STARTING.as_millis(),
                STARTING.as_secs(),
                breakpoint_ns() / 1e3
            );
        }
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
                "; no function matches {} yet (searched again each second after an import, \
                 else every {} s)",
                waiting.join(", "),
                FULL_RESCAN.as_secs()
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
        if layout.row.version.minor >= 11 {
            return Ok(code + layout.walk.code_adaptive);
        }
        // 3.8-3.10: co_code's bytes, read from the calibration process.
        let mut b = [0u8; 8];
        crate::target::memory::read(pid, code + 48, &mut b).map_err(|e| {
            Error::ProbeUnavailable(format!("co_code of pid {pid} at {:#x}: {e}", code + 48))
        })?;
        Ok(u64::from_le_bytes(b) + u64::from(layout.objects.bytes_data))
    };
    let mut watch = |pid: i32, unit: u64| -> Result<()> {
        let fd = perf::open_watch(pid, unit, false).map_err(|e| {
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
    match crate::kernel::overhead::measure_hit() {
        Some(ns) => Ok(format!(
            "hardware watchpoints on the functions' first bytecode (--source watch): ~{:.0} us \
             per call of them, nothing for other calls",
            ns / 1e3
        )),
        None => Err("this machine gives pyprobe no hardware breakpoint".into()),
    }
}
