//! Where function calls and returns come from on a target, chosen once per target for every
//! tool that traces functions. Today: CPython's USDT probes, counted on function__return where
//! entries cost tracing mode (3.11) and on function__entry elsewhere (3.6-3.10, 3.15+).
use libbpf_rs::ProgramMut;

use crate::error::{Error, Result};
use crate::kernel::Probes;
use crate::kernel::types::{FrameLayout, FunctionSource as BpfSource};
use crate::target::Target;
use crate::versions::{PyVersion, frame_layout};

#[derive(Debug, Clone, Copy)]
pub struct FunctionSource {
    pub version: PyVersion,
    /// Count on function__entry (true) or on function__return (false).
    pub count_on_entry: bool,
    /// function__entry fires only in tracing mode, switched on by holding the line semaphore.
    pub entry_needs_tracing_mode: bool,
    /// function__return does not fire for frames that exit by exception (3.15+).
    pub returns_may_miss: bool,
    /// How to reach the running code object; without it a function is (file, name, the line
    /// seen at entry), so same-named functions in one file stay apart only by that line.
    pub layout: Option<FrameLayout>,
    name_reg_entry: u32,
    name_reg_return: u32,
}

/// Which programs a tool attaches on this source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub entries: bool,
    pub returns: bool,
    pub tracing_mode: bool,
}

impl FunctionSource {
    /// The source for this target, or why functions cannot be traced on it (without naming
    /// alternatives: `tools::require` adds those).
    pub fn find(target: &Target) -> Result<FunctionSource> {
        target.require_probes()?;
        let version = target.version.ok_or_else(|| {
            Error::ProbeUnavailable(format!(
                "cannot tell the CPython version of {}; pyprobe needs it to know which probes fire",
                target.interpreter
            ))
        })?;
        if version.major == 3 && (12..=14).contains(&version.minor) {
            return Err(Error::ProbeUnavailable(format!(
                "CPython {version} has no function probes (3.12-3.14 removed them)"
            )));
        }
        if version < PyVersion::new(3, 6) {
            return Err(Error::ProbeUnavailable(format!(
                "CPython {version} is older than pyprobe supports (3.6+)"
            )));
        }
        for probe in ["function__entry", "function__return"] {
            if target.elf.probe(probe).is_none() {
                return Err(Error::ProbeUnavailable(format!(
                    "{} (CPython {version}) has no {probe} probe",
                    target.interpreter
                )));
            }
        }
        // Where the running frame can be read (3.11), its code object is the identity and
        // returns count exactly without tracing mode; Debian's build keeps the frame in rbx at
        // both probe sites, which the kernel side verifies before trusting (functions.bpf.h).
        let layout = frame_layout(version).and_then(|l| {
            let runtime = target.elf.symbol("_PyRuntime")?;
            Some(FrameLayout {
                runtime_addr: target.runtime_addr(runtime),
                frame_in_rbx: cfg!(target_arch = "x86_64") as u32,
                ..l
            })
        });
        let is_3_11 = version.minor == 11 && version.major == 3;
        Ok(FunctionSource {
            version,
            count_on_entry: layout.is_none(),
            entry_needs_tracing_mode: is_3_11,
            returns_may_miss: version >= PyVersion::new(3, 15),
            layout,
            name_reg_entry: target.elf.arg_register("function__entry", 1),
            name_reg_return: target.elf.arg_register("function__return", 1),
        })
    }

    /// The programs a tool needs: the counting side alone, or with `pairs` (latency, flow)
    /// entries and returns both, and tracing mode where entries need it.
    pub fn plan(&self, pairs: bool) -> Plan {
        let entries = pairs || self.count_on_entry;
        Plan {
            entries,
            returns: pairs || !self.count_on_entry,
            tracing_mode: entries && self.entry_needs_tracing_mode,
        }
    }

    /// Refuses a plan this target cannot serve.
    pub fn check(&self, plan: Plan, target: &Target) -> Result<()> {
        if plan.tracing_mode && target.elf.probe("line").is_none() {
            return Err(Error::ProbeUnavailable(format!(
                "{} has no line probe, whose semaphore CPython {} needs for function__entry",
                target.interpreter, self.version
            )));
        }
        Ok(())
    }

    /// The kernel side's copy (`struct function_source`).
    pub fn to_bpf(&self) -> BpfSource {
        BpfSource {
            layout: self.layout.unwrap_or_default(),
            name_reg_entry: self.name_reg_entry,
            name_reg_return: self.name_reg_return,
            count_on_entry: self.count_on_entry.into(),
            returns_may_miss: self.returns_may_miss.into(),
            ..Default::default()
        }
    }

    /// Attaches the plan's programs (disarmed, like every probe of a session).
    pub fn attach(
        &self,
        plan: Plan,
        probes: &mut Probes,
        target: &Target,
        programs: FunctionPrograms<'_, '_>,
    ) -> Result<()> {
        if plan.entries {
            probes.usdt(programs.entry, target, "function__entry")?;
        }
        if plan.returns {
            probes.usdt(programs.ret, target, "function__return")?;
        }
        if plan.tracing_mode {
            probes.hold_line_semaphore(programs.tracing_mode, target)?;
        }
        Ok(())
    }

    /// What a tool with this plan uses and what it costs, in a few words.
    pub fn describe(&self, plan: Plan) -> String {
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
}

/// The three programs of a function tracer, as its skeleton names them.
pub struct FunctionPrograms<'a, 'obj> {
    pub entry: &'a ProgramMut<'obj>,
    pub ret: &'a ProgramMut<'obj>,
    pub tracing_mode: &'a ProgramMut<'obj>,
}
