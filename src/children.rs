//! Processes forked from the traced one during a session (bpf/children.bpf.c), told at its end:
//! pyprobe traces one process, and a worker pool's calls must not go missing without a word.
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
        Ok(Children { skel, probes })
    }

    pub fn probes(&mut self) -> &mut Probes {
        &mut self.probes
    }

    /// Processes forked from the traced one while armed, and whether that is only a floor
    /// (some could not be followed: their own children went uncounted).
    pub fn born(&self) -> (u64, bool) {
        self.skel
            .maps
            .bss_data
            .as_deref()
            .map_or((0, false), |b| (b.births, b.family_full > 0))
    }

    /// The line that tells of them, if any were born.
    pub fn told(&self, pid: i32) -> Option<String> {
        let (n, floor) = self.born();
        (n > 0).then(|| {
            let n = if floor {
                format!("at least {n}")
            } else {
                n.to_string()
            };
            let s = if n == "1" { "process" } else { "processes" };
            format!(
                "pyprobe: {n} {s} forked from PID {pid} during the session, not traced: \
                 pyprobe traces the one process it is given (give a child's PID to trace it)"
            )
        })
    }
}
