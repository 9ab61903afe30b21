//! Processes forked from the traced one during a session (bpf/children.bpf.c), told at its end:
//! a worker pool's calls must not go missing without a word, whether pyprobe traced the one
//! process it was given or followed its forks (`--subprocesses`, which loses those that exec).
use libbpf_rs::{MapCore, MapFlags};

use crate::error::{Error, Result};
use crate::kernel::skel::children::{ChildrenSkel, ChildrenSkelBuilder};
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
    fn what_is_told_of_the_family() {
        let b = |forked, floor, execed| Born {
            forked,
            floor,
            execed,
        };
        assert_eq!(b(0, false, 0).told(7, true), None);
        assert!(
            b(3, false, 0)
                .told(7, false)
                .unwrap()
                .starts_with("pyprobe: 3 processes forked from PID 7 during the session, not traced:")
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
