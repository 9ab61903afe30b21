//! Where function calls and returns come from on a target, chosen once per target for every
//! tool that traces functions. CPython's USDT probes where they fire exactly and cheaply (3.11,
//! counted on function__return to avoid tracing mode; 3.15+); elsewhere the eval-frame source,
//! a uprobe on `_PyEval_EvalFrameDefault`, which sees every frame the interpreter evaluates on
//! 3.6-3.10 and, with CPython's perf trampoline on, on 3.12+ (3.11 inlines calls and has no
//! trampoline).
pub mod breakpoints;
mod exits;
mod init313;
mod prologue;
pub mod watch;

use libbpf_rs::{OpenProgramMut, ProgramMut};

use crate::abi::types::{EvalLayout, FrameLayout, QualnameLayout, SourceConfig};
use crate::cpython::trampoline::{self, TrampolineState};
use crate::error::{Error, Result};
use crate::kernel::Probes;
use crate::target::Target;
use crate::versions::{DebugOffsets, PyVersion, VersionLayout, frame_layout, qualname_layout};

#[derive(Debug, Clone)]
pub struct FunctionSource {
    pub version: PyVersion,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Usdt(Usdt),
    EvalFrame(EvalFrame),
}

/// `--source`: where breakpoints can serve (3.12-3.14 with the trampoline, exact names), who
/// decides between them and the shared probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SourceChoice {
    /// Watchpoints where they can count every call asked for (up to 4 functions, no
    /// --latency); else with --latency breakpoints where they serve; else the shared probe
    /// (for a command: a second on it first where breakpoints could take over)
    #[default]
    Auto,
    /// Hardware breakpoints wherever they serve
    Breakpoints,
    /// The probe every call passes
    Probe,
    /// Hardware data watchpoints on the functions' first bytecode unit (CPython 3.8-3.15, no
    /// probe or trampoline needed; up to 4 functions, calls only)
    Watch,
}

/// CPython's function__entry / function__return probes.
#[derive(Debug, Clone, Copy)]
pub struct Usdt {
    /// Count on function__entry (true) or on function__return (false).
    pub count_on_entry: bool,
    /// function__entry fires only in tracing mode, switched on by holding the line semaphore.
    pub entry_needs_tracing_mode: bool,
    /// function__return does not fire for frames that exit by exception (3.15+).
    pub returns_may_miss: bool,
    /// How to reach the running code object; without it a function is (file, name, the line
    /// seen at entry), so same-named functions in one file stay apart only by that line.
    pub layout: Option<FrameLayout>,
    /// Where the code object reached through `layout` keeps its qualified name.
    qualname: Option<QualnameLayout>,
    name_reg_entry: u32,
    name_reg_return: u32,
}

/// A uprobe on `_PyEval_EvalFrameDefault` (and uprobes where it returns, for returns).
#[derive(Debug, Clone)]
pub struct EvalFrame {
    layout: EvalLayout,
    /// File offsets of the entry probe and of the return sites (`exits`: why not a uretprobe);
    /// no sites where the function's code could not be decoded.
    entry: u64,
    returns: Vec<ReturnSite>,
    /// The kernel emulates the probed instruction (else each call is single-stepped).
    pub emulated: bool,
    /// 3.12+: every call passes the function only through the perf trampoline.
    pub trampoline: Option<Trampoline>,
    /// 3.13: where the `__init__` frames that bypass the function are counted.
    init_probe: Option<u64>,
    /// Where a code object keeps its qualified name (3.11+).
    qualname: Option<QualnameLayout>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trampoline {
    /// pyprobe started the command with PYTHONPERFSUPPORT=1.
    Requested,
    /// Found switched on in the running process.
    Active,
}

/// Which programs a tool attaches on this source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub entries: bool,
    pub returns: bool,
    pub tracing_mode: bool,
    /// The eval-frame source (else the USDT probes).
    pub eval_frame: bool,
    /// 3.13's instantiation probe (counting only: those frames have no return of their own).
    pub init: bool,
}

/// The programs of a function tracer, as its skeleton names them: `&mut OpenProgramMut` before
/// loading (`Plan::autoload`), `&ProgramMut` after (`FunctionSource::attach`).
pub struct FunctionPrograms<P> {
    pub entry: P,
    pub ret: P,
    pub tracing_mode: P,
    pub eval_entry: P,
    pub eval_return: P,
    pub init: Option<P>,
}

/// The `FunctionPrograms` of a skeleton whose programs have the names count's and flow's have
/// (`call_entry`, `call_return`, `tracing_mode`, `eval_entry`, `eval_return`), without `init`:
/// `function_programs!(&mut open.progs)` before loading, `function_programs!(&skel.progs)` after.
macro_rules! function_programs {
    (&mut $progs:expr) => {
        $crate::source::FunctionPrograms {
            entry: &mut $progs.call_entry,
            ret: &mut $progs.call_return,
            tracing_mode: &mut $progs.tracing_mode,
            eval_entry: &mut $progs.eval_entry,
            eval_return: &mut $progs.eval_return,
            init: None,
        }
    };
    (&$progs:expr) => {
        $crate::source::FunctionPrograms {
            entry: &$progs.call_entry,
            ret: &$progs.call_return,
            tracing_mode: &$progs.tracing_mode,
            eval_entry: &$progs.eval_entry,
            eval_return: &$progs.eval_return,
            init: None,
        }
    };
}
pub(crate) use function_programs;

impl Plan {
    /// Loads just the programs `FunctionSource::attach` attaches for this plan: a program left
    /// out is not verified, and the other source's may not even load on this kernel.
    pub fn autoload(&self, p: FunctionPrograms<&mut OpenProgramMut<'_>>) {
        let usdt = !self.eval_frame;
        p.entry.set_autoload(usdt && self.entries);
        p.ret.set_autoload(usdt && self.returns);
        p.tracing_mode.set_autoload(self.tracing_mode);
        p.eval_entry.set_autoload(self.eval_frame);
        p.eval_return.set_autoload(self.eval_frame && self.returns);
        if let Some(init) = p.init {
            init.set_autoload(self.init);
        }
    }
}

/// The environment a command gets so that its calls pass through the eval-frame source.
pub const TRAMPOLINE_ENV: (&str, &str) = ("PYTHONPERFSUPPORT", "1");

impl FunctionSource {
    /// The source for this target, or why functions cannot be traced on it (without naming
    /// alternatives: `tools::require` adds those).
    pub fn find(target: &Target) -> Result<FunctionSource> {
        let version = target.version.ok_or_else(|| {
            unavailable(format!(
                "cannot tell the CPython version of {}; pyprobe needs it to know how calls can be traced",
                target.interpreter
            ))
        })?;
        if version < PyVersion::new(3, 6) {
            return Err(unavailable(format!(
                "CPython {version} is older than pyprobe supports (3.6+)"
            )));
        }
        let has_usdt = ["function__entry", "function__return"]
            .iter()
            .all(|p| target.elf.probe(p).is_some());
        let kind = match version.minor {
            11 if has_usdt => Kind::Usdt(usdt(target, version)),
            11 => {
                return Err(unavailable(format!(
                    "{} (CPython {version}) was built without USDT probes, and 3.11 calls Python functions \
                     inline with no perf trampoline to route them: no exact way to trace its calls",
                    target.interpreter
                )));
            }
            15.. if has_usdt => Kind::Usdt(usdt(target, version)),
            _ => Kind::EvalFrame(eval_frame(target, version)?),
        };
        Ok(FunctionSource { version, kind })
    }

    /// The programs a tool needs: the counting side alone, or with `pairs` (latency, flow)
    /// entries and returns both, and tracing mode where USDT entries need it.
    pub fn plan(&self, pairs: bool) -> Plan {
        match &self.kind {
            Kind::Usdt(u) => {
                let entries = pairs || u.count_on_entry;
                Plan {
                    entries,
                    returns: pairs || !u.count_on_entry,
                    tracing_mode: entries && u.entry_needs_tracing_mode,
                    eval_frame: false,
                    init: false,
                }
            }
            Kind::EvalFrame(e) => Plan {
                entries: true,
                returns: pairs,
                tracing_mode: false,
                eval_frame: true,
                init: e.init_probe.is_some(),
            },
        }
    }

    /// Refuses a plan this target cannot serve.
    pub fn check(&self, plan: Plan, target: &Target) -> Result<()> {
        if let Kind::EvalFrame(e) = &self.kind
            && plan.returns
            && e.returns.is_empty()
        {
            return Err(unavailable(format!(
                "pyprobe found no return instruction it can probe in {}'s                  _PyEval_EvalFrameDefault, so calls cannot be timed or followed there                  (counting works)",
                target.interpreter
            )));
        }
        if plan.tracing_mode && target.elf.probe("line").is_none() {
            return Err(unavailable(format!(
                "{} has no line probe, whose semaphore CPython {} needs for function__entry",
                target.interpreter, self.version
            )));
        }
        Ok(())
    }

    /// The kernel side's copy (`struct source_config`).
    pub fn to_bpf(&self) -> SourceConfig {
        let qualname = self.qualnames().unwrap_or_default();
        match &self.kind {
            Kind::Usdt(u) => SourceConfig {
                layout: u.layout.unwrap_or_default(),
                name_reg_entry: u.name_reg_entry,
                name_reg_return: u.name_reg_return,
                count_on_entry: u.count_on_entry.into(),
                returns_may_miss: u.returns_may_miss.into(),
                qualname,
                ..Default::default()
            },
            Kind::EvalFrame(e) => SourceConfig {
                eval: e.layout,
                eval_frame: 1,
                count_on_entry: 1,
                qualname,
                ..Default::default()
            },
        }
    }

    /// Where this source reads a code object's qualified name (`--filter Class.method`), or
    /// why it cannot.
    pub fn qualnames(&self) -> std::result::Result<QualnameLayout, String> {
        let v = self.version;
        match &self.kind {
            Kind::Usdt(u) => u.qualname.ok_or_else(|| {
                format!(
                    "on CPython {v} pyprobe takes calls from the function__entry probe, which \
                     gives it no code object to read a qualified name from"
                )
            }),
            Kind::EvalFrame(e) => e.qualname.ok_or_else(|| {
                format!("CPython {v} has no qualified names (co_qualname came in 3.11)")
            }),
        }
    }

    /// Attaches the plan's programs (disarmed, like every probe of a session).
    pub fn attach(
        &self,
        plan: Plan,
        probes: &mut Probes,
        target: &Target,
        programs: FunctionPrograms<&ProgramMut<'_>>,
    ) -> Result<()> {
        match &self.kind {
            Kind::Usdt(_) => {
                if plan.entries {
                    probes.usdt(programs.entry, target, "function__entry")?;
                }
                if plan.returns {
                    probes.usdt(programs.ret, target, "function__return")?;
                }
                if plan.tracing_mode {
                    probes.hold_line_semaphore(programs.tracing_mode, target)?;
                }
            }
            Kind::EvalFrame(e) => {
                let what = "_PyEval_EvalFrameDefault";
                probes.uprobe(programs.eval_entry, target, e.entry, what)?;
                if plan.returns {
                    for site in e.return_sites() {
                        probes.uprobe_with_cookie(
                            programs.eval_return,
                            target,
                            site.offset,
                            site.cookie,
                            what,
                        )?;
                    }
                }
                if let (true, Some(offset), Some(prog)) = (plan.init, e.init_probe, programs.init) {
                    probes.uprobe(prog, target, offset, "3.13's instantiation call")?;
                }
            }
        }
        Ok(())
    }

    /// The eval-frame uprobe's file offset, and 3.13's instantiation probe's, where they are
    /// attached apart from `attach` (pycount's breakpoint source: src/source/breakpoints/).
    pub fn eval_offsets(&self) -> Option<(u64, Option<u64>)> {
        match &self.kind {
            Kind::EvalFrame(e) => Some((e.entry, e.init_probe)),
            Kind::Usdt(_) => None,
        }
    }

    /// The USDT probes a plan raises the semaphores of (CPython's code behind them runs).
    pub fn usdt_probes(&self, plan: Plan) -> Vec<&'static str> {
        match &self.kind {
            Kind::Usdt(_) => [
                (plan.entries, "function__entry"),
                (plan.returns, "function__return"),
                (plan.tracing_mode, "line"),
            ]
            .into_iter()
            .filter_map(|(on, probe)| on.then_some(probe))
            .collect(),
            Kind::EvalFrame(_) => Vec::new(),
        }
    }

    /// Calls this source cannot see on this target, to be said wherever results are shown.
    pub fn hidden(&self, plan: Plan) -> Option<&'static str> {
        match &self.kind {
            Kind::EvalFrame(_) if self.version.minor == 13 && !plan.init => Some(
                "CPython 3.13 runs the __init__ of plain classes without _PyEval_EvalFrameDefault \
                 (CALL_ALLOC_AND_ENTER_INIT): those calls are not seen",
            ),
            _ => None,
        }
    }

    /// What the banner says of the source, where the user should know it.
    pub fn banner_note(&self) -> Option<&'static str> {
        match &self.kind {
            Kind::EvalFrame(EvalFrame {
                trampoline: Some(Trampoline::Requested),
                ..
            }) => Some("CPython's perf trampoline switched on: PYTHONPERFSUPPORT=1"),
            _ => None,
        }
    }

    /// What a tool with this plan uses, in a few words.
    pub fn describe(&self, plan: Plan) -> String {
        match &self.kind {
            Kind::Usdt(_) => {
                let side = |on: bool, probe: &str| on.then(|| format!("USDT {probe}"));
                let mut parts: Vec<String> = [
                    side(plan.entries, "function__entry"),
                    side(plan.returns, "function__return"),
                ]
                .into_iter()
                .flatten()
                .collect();
                if plan.tracing_mode {
                    parts.push("tracing mode (line semaphore held)".into());
                }
                parts.join(" + ")
            }
            Kind::EvalFrame(e) => {
                let mut s = format!(
                    "uprobe on _PyEval_EvalFrameDefault (file offset {:#x}{})",
                    e.entry,
                    if e.emulated {
                        ""
                    } else {
                        ", single-stepped: about 10x the usual cost"
                    }
                );
                if plan.returns {
                    let sites: Vec<String> = e
                        .return_sites()
                        .iter()
                        .map(|r| {
                            let stepped = if r.stepped {
                                " (its ret, single-stepped)"
                            } else {
                                ""
                            };
                            format!("{:#x}{stepped}", r.offset)
                        })
                        .collect();
                    s.push_str(&format!(
                        " + uprobes where it returns ({})",
                        sites.join(", ")
                    ));
                }
                if plan.init {
                    s.push_str(" + 3.13's instantiation call");
                }
                match e.trampoline {
                    Some(Trampoline::Requested) => {
                        s.push_str("; perf trampoline switched on (PYTHONPERFSUPPORT=1)")
                    }
                    Some(Trampoline::Active) => s.push_str("; the target's perf trampoline"),
                    None => {}
                }
                s
            }
        }
    }
}

/// `--activate-trampoline`: where the eval-frame source needs CPython's perf trampoline and it
/// is off, switches it on in the running process (3.14+, through CPython's remote-debugging
/// interface), saying so first: it stays on for the life of the process.
pub fn activate_trampoline(target: &Target) -> Result<()> {
    let needs = target.version.is_some_and(|v| {
        v.major == 3
            && v.minor >= 12
            && !(v.minor >= 15 && target.elf.probe("function__entry").is_some())
    });
    if !needs
        || target.trampoline_requested
        || trampoline::state(target)? == TrampolineState::Active
    {
        return Ok(());
    }
    trampoline::activate(target, || {
        eprintln!(
            "pyprobe: switching on CPython's perf trampoline in PID {}: it stays on until the \
             process exits (about 30 ns more per Python call, and /tmp/perf-{}.map in its root \
             grows by a line per function)",
            target.pid, target.pid
        )
    })
}

fn unavailable(why: String) -> Error {
    Error::ProbeUnavailable(why)
}

fn usdt(target: &Target, version: PyVersion) -> Usdt {
    // Where the running frame can be read (3.11), its code object is the identity and
    // returns count exactly without tracing mode; Debian's build keeps the frame in rbx at
    // both probe sites, which the kernel side verifies before trusting (functions.bpf.h).
    let layout = frame_layout(version).and_then(|l| {
        let runtime = target.elf.symbol("_PyRuntime")?;
        Some(FrameLayout {
            runtime_addr: target.runtime_addr(runtime),
            frame_in_rbx: 1,
            ..l
        })
    });
    Usdt {
        count_on_entry: layout.is_none(),
        qualname: layout.and(qualname_layout(version)),
        entry_needs_tracing_mode: version.minor == 11,
        returns_may_miss: version >= PyVersion::new(3, 15),
        layout,
        name_reg_entry: target.elf.arg_register("function__entry", 1),
        name_reg_return: target.elf.arg_register("function__return", 1),
    }
}

fn eval_frame(target: &Target, version: PyVersion) -> Result<EvalFrame> {
    let mut table = VersionLayout::of(version).ok_or_else(|| {
        unavailable(format!(
            "pyprobe knows no frame layout for CPython {version}"
        ))
    })?;
    // 3.13+ publish their own layout; where the build does, it wins over the table.
    if let Some(d) = target
        .elf
        .symbol_info("_PyRuntime")
        .and_then(|r| DebugOffsets::parse(&r.head))
    {
        table = table.with_build(&d);
    }
    let mut layout = table.eval();
    let qualname = table.qualname();
    let function = target
        .elf
        .symbol_info("_PyEval_EvalFrameDefault")
        .ok_or_else(|| {
            unavailable(format!(
                "{} has no _PyEval_EvalFrameDefault symbol",
                target.interpreter
            ))
        })?;
    let frame_reg = if layout.frame_in_rdi != 0 {
        prologue::Reg::Rdi
    } else {
        prologue::Reg::Rsi
    };
    let at = prologue::place(&function.head, &[frame_reg]);
    layout.sp_adjust = at.sp_adjust;
    let offset = |o: u64| {
        target.elf.file_offset(function.addr + o).ok_or_else(|| {
            unavailable(format!(
                "{}: _PyEval_EvalFrameDefault is not in the file",
                target.interpreter
            ))
        })
    };
    let trampoline = if version.minor >= 12 {
        Some(trampoline_for(target, version)?)
    } else {
        None
    };
    // The trampoline's stubs live outside the interpreter file: a return address inside it is
    // a call that did not come through one.
    layout.trampoline = trampoline.is_some().into();
    let segments = &target.elf.segments;
    layout.interp_lo = segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
    layout.interp_hi = segments
        .iter()
        .map(|s| s.vaddr + s.filesz)
        .max()
        .unwrap_or(0);
    layout.interp_lo = target.runtime_addr(layout.interp_lo);
    layout.interp_hi = target.runtime_addr(layout.interp_hi);
    let mut returns = Vec::new();
    for site in return_sites(target, function).unwrap_or_default() {
        returns.push(ReturnSite {
            offset: offset(site.addr - function.addr)
                .or_else(|_| island_offset(target, site.addr))?,
            cookie: site.cookie(),
            stepped: site.condition.is_none() && site.offset == 0 && !site.from_rbp,
        });
    }
    Ok(EvalFrame {
        layout,
        entry: offset(at.entry)?,
        returns,
        emulated: at.emulated,
        trampoline,
        init_probe: (version.minor == 13)
            .then(|| init313::allocation_probe(target))
            .flatten(),
        qualname,
    })
}

/// One of the places where `_PyEval_EvalFrameDefault` returns (`exits`).
#[derive(Debug, Clone, Copy)]
struct ReturnSite {
    /// File offset of the probed instruction.
    offset: u64,
    /// What the kernel side needs to find the returning call there (`exits::Site::cookie`).
    cookie: u64,
    /// A `ret` probed itself: single-stepped, about 15 us a hit.
    stepped: bool,
}

impl EvalFrame {
    fn return_sites(&self) -> &[ReturnSite] {
        &self.returns
    }
}

/// The largest function whose code is read to find its returns (CPython's eval loops: 35-60
/// KiB), and the most cold blocks followed, each read up to `ISLAND_LEN`.
const MAX_BODY: u64 = 512 << 10;
const MAX_ISLANDS: usize = 1024;
const ISLAND_LEN: usize = 512;

/// Where `function` returns: its code and its cold blocks (reached by its branches, and theirs)
/// read from the interpreter file and decoded; None where they cannot be read or decoded.
fn return_sites(target: &Target, function: &crate::target::Symbol) -> Option<Vec<exits::Site>> {
    if function.size == 0 || function.size > MAX_BODY {
        return None;
    }
    let body = target
        .file_bytes(function.addr, function.size as usize)
        .ok()?;
    let range = function.addr..function.addr + function.size;
    let code = exits::Code {
        addr: function.addr,
        bytes: &body,
    };
    let follow_epilogues = target.version.is_some_and(|v| v.minor <= 10);
    let mut todo = if follow_epilogues {
        exits::branches_out(&code, range.clone(), false)
    } else {
        Vec::new()
    };
    let mut islands: Vec<(u64, Vec<u8>)> = Vec::new();
    while let Some(at) = todo.pop() {
        if islands.len() >= MAX_ISLANDS || islands.iter().any(|(a, _)| *a == at) {
            continue;
        }
        let Ok(bytes) = target.file_bytes(at, ISLAND_LEN) else {
            continue;
        };
        let island = exits::Code {
            addr: at,
            bytes: &bytes,
        };
        todo.extend(exits::branches_out(&island, range.clone(), true));
        islands.push((at, bytes));
    }
    let islands: Vec<exits::Code<'_>> = islands
        .iter()
        .map(|(addr, bytes)| exits::Code { addr: *addr, bytes })
        .collect();
    exits::sites(&code, &islands, follow_epilogues)
}

fn island_offset(target: &Target, vaddr: u64) -> Result<u64> {
    target.elf.file_offset(vaddr).ok_or_else(|| {
        unavailable(format!(
            "{}: a return site of _PyEval_EvalFrameDefault is not in the file",
            target.interpreter
        ))
    })
}

/// On 3.12+ calls pass `_PyEval_EvalFrameDefault` only through CPython's perf trampoline.
fn trampoline_for(target: &Target, version: PyVersion) -> Result<Trampoline> {
    if target.trampoline_requested {
        return Ok(Trampoline::Requested);
    }
    let activate = if version >= PyVersion::new(3, 14) {
        ", or switch it on now with --activate-trampoline"
    } else {
        ""
    };
    match trampoline::state(target)? {
        TrampolineState::Active => Ok(Trampoline::Active),
        TrampolineState::Inactive => Err(unavailable(format!(
            "CPython {version} calls Python functions inline, out of pyprobe's sight, unless its perf \
             trampoline is on, and PID {} did not switch it on: restart it with PYTHONPERFSUPPORT=1 \
             (or -X perf){activate}",
            target.pid
        ))),
        TrampolineState::Unknown(why) => Err(unavailable(format!(
            "CPython {version} needs its perf trampoline for exact call tracing, and pyprobe cannot \
             tell whether PID {} has it on: {why}",
            target.pid
        ))),
    }
}
