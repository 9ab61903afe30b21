//! Every tracing tool and what it needs from an interpreter, listed once: a refusal says what
//! works on that interpreter instead, and `pyprobe probes` shows the same list for a target.
use crate::error::{Error, Result};
use crate::source::{FunctionSource, Plan};
use crate::target::Target;
use crate::versions::{Support, probe_support};

/// What a tool needs from the interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Function calls from the target's function source: the counting side, or entries and
    /// returns paired (`pairs`).
    Functions { pairs: bool },
    /// These USDT probes, present and firing on the version.
    Probes(&'static [&'static str]),
    /// Where the threads' stacks are: a known layout of the version (no probes needed).
    Stacks,
}

#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub needs: Needs,
}

pub const TOOLS: &[Tool] = &[
    Tool {
        name: "pycount",
        needs: Needs::Functions { pairs: false },
    },
    Tool {
        name: "pycount --latency",
        needs: Needs::Functions { pairs: true },
    },
    Tool {
        name: "pyflow",
        needs: Needs::Functions { pairs: true },
    },
    Tool {
        name: "pyprobe lines",
        needs: Needs::Probes(&["line"]),
    },
    Tool {
        name: "pyprobe imports",
        needs: Needs::Probes(&["import__find__load__start", "import__find__load__done"]),
    },
    Tool {
        name: "pyprobe audit",
        needs: Needs::Probes(&["audit"]),
    },
    Tool {
        name: "pygc",
        needs: Needs::Probes(&["gc__start", "gc__done"]),
    },
    Tool {
        name: "pyprobe stacks",
        needs: Needs::Stacks,
    },
    Tool {
        name: "pyprobe record",
        needs: Needs::Stacks,
    },
    Tool {
        name: "pyprobe top",
        needs: Needs::Stacks,
    },
];

/// What serves a tool on a target.
#[derive(Debug, Clone, Copy)]
pub enum Means {
    Functions(FunctionSource, Plan),
    Probes(&'static [&'static str]),
    /// The stack layout, from the build's own debug offsets or pyprobe's table.
    Stacks {
        from_build: bool,
    },
}

impl Means {
    /// In a few words, for `pyprobe probes`.
    pub fn describe(&self) -> String {
        match self {
            Means::Functions(source, plan) => source.describe(*plan),
            Means::Probes(probes) => format!("USDT {}", probes.join(" + ")),
            Means::Stacks { from_build: true } => {
                "stack walk, offsets from the build's _Py_DebugOffsets".into()
            }
            Means::Stacks { from_build: false } => {
                "stack walk, offsets from pyprobe's table for the version".into()
            }
        }
    }
}

/// What would serve a tool with these needs on this target, or why nothing can (the error
/// names no alternatives: `require` adds them).
pub fn means(target: &Target, needs: Needs) -> Result<Means> {
    match needs {
        Needs::Functions { pairs } => {
            let source = FunctionSource::find(target)?;
            let plan = source.plan(pairs);
            source.check(plan, target)?;
            Ok(Means::Functions(source, plan))
        }
        Needs::Probes(probes) => {
            target.require_probes()?;
            for probe in probes {
                if let Some(why) = probe_unusable(target, probe) {
                    return Err(Error::ProbeUnavailable(format!(
                        "{} (CPython {}) cannot serve this: {why}",
                        target.interpreter,
                        target.version_text()
                    )));
                }
            }
            Ok(Means::Probes(probes))
        }
        Needs::Stacks => match crate::pystate::Interpreter::layout_of(target) {
            Ok((layout, _)) => Ok(Means::Stacks {
                from_build: layout.from_build,
            }),
            Err(e) => Err(Error::ProbeUnavailable(e.to_string())),
        },
    }
}

fn probe_unusable(target: &Target, probe: &str) -> Option<String> {
    match target.version.map(|v| probe_support(v, probe)) {
        Some(Support::Broken(why) | Support::NotInVersion(why)) => Some(why.to_string()),
        _ if target.elf.probe(probe).is_none() => Some(format!("no {probe} probe")),
        _ => None,
    }
}

/// The tools that can run on this target.
pub fn what_works(target: &Target) -> Vec<&'static str> {
    TOOLS
        .iter()
        .filter(|t| means(target, t.needs).is_ok())
        .map(|t| t.name)
        .collect()
}

/// The function source of this target and the programs to attach, for a tool that traces
/// functions (`pairs`: entries and returns both); refusals as in `require`.
pub fn require_functions(target: &Target, pairs: bool) -> Result<(FunctionSource, Plan)> {
    match require(target, Needs::Functions { pairs })? {
        Means::Functions(source, plan) => Ok((source, plan)),
        Means::Probes(_) | Means::Stacks { .. } => {
            unreachable!("function needs are served by a function source")
        }
    }
}

/// What serves a tool on this target; a refusal is one line that says why and what works.
pub fn require(target: &Target, needs: Needs) -> Result<Means> {
    means(target, needs).map_err(|e| match e {
        Error::ProbeUnavailable(why) => {
            let works = what_works(target);
            if works.is_empty() {
                Error::ProbeUnavailable(why)
            } else {
                Error::ProbeUnavailable(format!("{why}; what works here: {}", works.join(", ")))
            }
        }
        other => other,
    })
}
