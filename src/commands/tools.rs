//! Every tracing tool and what it needs from an interpreter, listed once: a refusal says what
//! works on that interpreter instead, and `pyprobe probes` shows the same list for a target.
use crate::error::{Error, Result};
use crate::escape::escape_bytes;
use crate::source::{FunctionSource, Plan};
use crate::target::{Loaded, Target, non_utf8_files};
use crate::versions::{NameHazard, Support, name_hazard, probe_support};

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
    /// Asyncio's tasks in memory: a known task layout of the version, and its stack layout for
    /// the coroutines' frames.
    Tasks,
    /// PyTraceBack_Here in the file, where the version keeps the raised exception, and its
    /// stack layout for the frames.
    Exceptions,
}

#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub needs: Needs,
}

pub const TOOLS: &[Tool] = &[
    tool("pycount", Needs::Functions { pairs: false }),
    tool("pycount --latency", Needs::Functions { pairs: true }),
    tool("pyflow", Needs::Functions { pairs: true }),
    tool("pyprobe lines", Needs::Probes(&["line"])),
    tool(
        "pyprobe imports",
        Needs::Probes(&["import__find__load__start", "import__find__load__done"]),
    ),
    tool("pyprobe audit", Needs::Probes(&["audit"])),
    tool("pygc", Needs::Probes(&["gc__start", "gc__done"])),
    tool("pyprobe stacks", Needs::Stacks),
    tool("pyprobe record", Needs::Stacks),
    tool("pyprobe top", Needs::Stacks),
    tool("pyprobe tasks", Needs::Tasks),
    tool("pyprobe exceptions", Needs::Exceptions),
];

const fn tool(name: &'static str, needs: Needs) -> Tool {
    Tool { name, needs }
}

/// What serves a tool on a target.
#[derive(Debug, Clone)]
pub enum Means {
    Functions(FunctionSource, Plan),
    Probes(&'static [&'static str]),
    /// The stack layout, from the build's own debug offsets or pyprobe's table.
    Stacks {
        from_build: bool,
    },
    /// The asyncio task walk (3.14+: where the tasks are, from the build's AsyncioDebug section).
    Tasks,
    /// A uprobe on PyTraceBack_Here.
    Exceptions,
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
            Means::Tasks => {
                "asyncio task walk, offsets from pyprobe's table for the version".into()
            }
            Means::Exceptions => "uprobe on PyTraceBack_Here".into(),
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
        Needs::Stacks => stack_layout(target).map(|from_build| Means::Stacks { from_build }),
        Needs::Tasks => {
            stack_layout(target)?;
            crate::cpython::pystate::TaskReader::of(target).ok_or_else(|| {
                Error::ProbeUnavailable(crate::cpython::pystate::no_task_layout(target))
            })?;
            Ok(Means::Tasks)
        }
        Needs::Exceptions => {
            stack_layout(target)?;
            crate::cpython::raised::site(target)?;
            Ok(Means::Exceptions)
        }
    }
}

/// Whether pyprobe knows where the target's stacks are: from the build's own debug offsets
/// (true) or from its table.
fn stack_layout(target: &Target) -> Result<bool> {
    match crate::cpython::pystate::Interpreter::layout_of(target) {
        Ok((layout, _)) => Ok(layout.row.from_build),
        Err(e) => Err(Error::ProbeUnavailable(e.to_string())),
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
        Means::Probes(_) | Means::Stacks { .. } | Means::Tasks | Means::Exceptions => {
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

/// Refuses to raise `probes` when CPython's code behind them would fail on a file name of the
/// target that is not UTF-8 (`versions::NameHazard`), unless `force`: the modules it has loaded
/// are read from its memory; a command not yet started is judged by its command line and
/// working directory. Where pyprobe cannot tell, it attaches (README: Known limits).
pub fn check_file_names(target: &Target, probes: &[&str], force: bool) -> Result<()> {
    let Some(version) = target.version else {
        return Ok(());
    };
    let risky: Vec<&str> = probes
        .iter()
        .copied()
        .filter(|p| name_hazard(version, p) == Some(NameHazard::FileNames))
        .collect();
    if risky.is_empty() {
        return Ok(());
    }
    let found = match non_utf8_files(target) {
        Ok(Loaded::Modules(files)) => files.first().map(|f| {
            format!(
                "its module {} was loaded from {}",
                crate::escape::escape(&f.module),
                escape_bytes(&f.path)
            )
        }),
        Ok(Loaded::Nothing) => command_line_name(target.pid),
        Err(_) => None,
    };
    let Some(what) = found else {
        return Ok(());
    };
    let probes = match risky.as_slice() {
        [one] => format!("{one} probe"),
        [first @ .., last] => format!("{} and {last} probes", first.join(", ")),
        [] => unreachable!("checked above"),
    };
    if force {
        eprintln!(
            "pyprobe: WARNING: --force: PID {}: {what}, a name that is not UTF-8: when the program \
             runs code from such a file, CPython {version}'s code behind its {probes} fails there \
             (UnicodeEncodeError, then SystemError)",
            target.pid
        );
        return Ok(());
    }
    Err(Error::NonUtf8FileName {
        pid: target.pid,
        what,
        version: version.to_string(),
        probes,
    })
}

/// A name in a command that has not run yet and that would become a file name of its code:
/// an argument (its script) or its working directory (where relative paths lead).
fn command_line_name(pid: i32) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if let Some(arg) = cmdline
        .split(|&b| b == 0)
        .skip(1)
        .find(|a| std::str::from_utf8(a).is_err())
    {
        return Some(format!("its command line names {}", escape_bytes(arg)));
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let cwd = cwd.as_os_str().as_bytes();
    std::str::from_utf8(cwd)
        .is_err()
        .then(|| format!("it runs in the directory {}", escape_bytes(cwd)))
}
