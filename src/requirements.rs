//! Whether a target can serve a probe-based command, and if not, a message that says why and
//! what works on that interpreter instead.
use crate::error::{Error, Result};
use crate::target::Target;
use crate::versions::probe_support;

/// The commands and the probes each needs, to tell users what works where theirs does not.
const COMMANDS: &[(&str, &str)] = &[
    ("pycount", "function__return"),
    ("pyprobe lines", "line"),
    ("pyprobe imports", "import__find__load__start"),
    ("pyprobe audit", "audit"),
    ("pygc", "gc__start"),
];

/// Commands whose probe is in this interpreter and fires on its version.
pub fn what_works(target: &Target) -> Vec<&'static str> {
    COMMANDS
        .iter()
        .filter(|(_, probe)| {
            target.elf.probe(probe).is_some()
                && target
                    .version
                    .is_none_or(|v| probe_support(v, probe).works())
        })
        .map(|&(cmd, _)| cmd)
        .collect()
}

/// Fails with one actionable line unless every probe is present and fires on this version.
pub fn require(target: &Target, probes: &[&str]) -> Result<()> {
    target.require_probes()?;
    for probe in probes {
        let why = match target.version.map(|v| probe_support(v, probe)) {
            Some(s) if !s.works() => Some(match s {
                crate::versions::Support::Broken(w) | crate::versions::Support::NotInVersion(w) => {
                    w.to_string()
                }
                _ => unreachable!("works() covers the other kinds"),
            }),
            _ if target.elf.probe(probe).is_none() => Some(format!("no {probe} probe")),
            _ => None,
        };
        if let Some(why) = why {
            let works = what_works(target);
            let alt = if works.is_empty() {
                String::new()
            } else {
                format!("; what works here: {}", works.join(", "))
            };
            return Err(Error::ProbeUnavailable(format!(
                "{} (CPython {}) cannot serve this: {why}{alt}",
                target.interpreter,
                target.version_text()
            )));
        }
    }
    Ok(())
}
