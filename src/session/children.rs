//! Processes forked from the traced one during a session (bpf/children.bpf.c), told at its end:
//! a worker pool's calls must not go missing without a word, whether pyprobe traced the one
//! process it was given or followed its forks (`--subprocesses`, which loses those that exec).
use libbpf_rs::{MapCore, MapFlags};

use crate::abi::skel::children::{ChildrenSkel, ChildrenSkelBuilder};
use crate::error::{Error, Result};
use crate::kernel::{Loaded, Probes, load};

pub struct Children {
    skel: Loaded<ChildrenSkel<'static>>,
    probes: Probes,
}

impl Children {
    /// Watches for processes forked from `pid` (and from those), disarmed until the session
    /// arms it with its own probes.
    pub fn watch(pid: i32) -> Result<Children> {
        let skel = load(ChildrenSkelBuilder::default(), |_| Ok(()))?;
        skel.maps
            .family
            .update(&(pid as u32).to_ne_bytes(), &[1], MapFlags::ANY)
            .map_err(|e| Error::bpf("watching for forked children", e))?;
        let mut probes = skel.probes()?;
        probes.trace(&skel.progs.child_born, "sched_process_fork")?;
        probes.trace(&skel.progs.child_execed, "sched_process_exec")?;
        Ok(Children { skel, probes })
    }

    pub fn probes(&mut self) -> &mut Probes {
        &mut self.probes
    }

    /// Processes forked from the traced one while armed, whether that is only a floor (some
    /// could not be followed: their own children went uncounted), and how many of them then
    /// ran another program.
    pub fn born(&self) -> Born {
        self.skel
            .maps
            .bss_data
            .as_deref()
            .map_or(Born::default(), |b| Born {
                forked: b.births,
                floor: b.family_full > 0,
                execed: b.execs,
            })
    }

    /// The line that tells of them, if any were born; `followed`: their calls were traced.
    pub fn told(&self, pid: i32, followed: bool) -> Option<String> {
        self.born().told(pid, followed)
    }
}

/// The top of a process's stack (`startstack` of /proc/PID/stat): a forked child has the same,
/// a process that ran another program (exec) has another.
pub fn stack_top(pid: i32) -> Result<u64> {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/stat"));
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    parse_stack_top(&text)
        .ok_or_else(|| Error::io(&path, std::io::Error::other("no startstack field")))
}

fn parse_stack_top(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold anything, ')' included) start at field 3.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(28 - 3)?.parse().ok()
}

/// What the family of the traced process did during a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Born {
    pub forked: u64,
    pub floor: bool,
    pub execed: u64,
}

impl Born {
    fn told(&self, pid: i32, followed: bool) -> Option<String> {
        let n = self.forked;
        (n > 0).then(|| {
            let count = if self.floor {
                format!("at least {n}")
            } else {
                n.to_string()
            };
            let s = if n == 1 { "process" } else { "processes" };
            if !followed {
                return format!(
                    "pyprobe: {count} {s} forked from PID {pid} during the session, not traced: \
                     pyprobe traces the one process it is given (--subprocesses follows them, \
                     or give a child's PID to trace it)"
                );
            }
            let mut line = format!(
                "pyprobe: {count} {s} forked from PID {pid} during the session, traced \
                 (--subprocesses)"
            );
            if self.execed > 0 {
                line.push_str(&format!(
                    "; {} of them ran another program (exec) and {} not followed from there",
                    self.execed,
                    if self.execed == 1 { "was" } else { "were" }
                ));
            }
            line
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_top_is_field_28() {
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 9 1 2 \
                    94000 94100 94200 140737488346000 0 0";
        assert_eq!(parse_stack_top(stat), Some(140737488346000));
        assert_eq!(parse_stack_top("42 (a) S 1"), None);
        assert!(stack_top(std::process::id() as i32).unwrap() > 0);
    }

    #[test]
    fn what_is_told_of_the_family() {
        let b = |forked, floor, execed| Born {
            forked,
            floor,
            execed,
        };
        assert_eq!(b(0, false, 0).told(7, true), None);
        assert!(
            b(3, false, 0).told(7, false).unwrap().starts_with(
                "pyprobe: 3 processes forked from PID 7 during the session, not traced:"
            )
        );
        assert_eq!(
            b(1, true, 0).told(7, true).unwrap(),
            "pyprobe: at least 1 process forked from PID 7 during the session, traced (--subprocesses)"
        );
        assert_eq!(
            b(4, false, 1).told(7, true).unwrap(),
            "pyprobe: 4 processes forked from PID 7 during the session, traced (--subprocesses); \
             1 of them ran another program (exec) and was not followed from there"
        );
    }
}
