//! Whether this user may load BPF programs, or read another process's memory (stacks, probes):
//! checked before anything is touched, with the fix.
use crate::error::{Error, Result};

const CAP_SYS_PTRACE: u64 = 1 << 19;
const CAP_SYS_ADMIN: u64 = 1 << 21;
const CAP_PERFMON: u64 = 1 << 38;
const CAP_BPF: u64 = 1 << 39;

/// This process's effective capabilities.
fn effective_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// Refuses early, with the fix, when BPF cannot be loaded by this user.
pub fn check_privileges() -> Result<()> {
    let caps = effective_caps();
    if caps & CAP_SYS_ADMIN != 0 || (caps & CAP_BPF != 0 && caps & CAP_PERFMON != 0) {
        Ok(())
    } else {
        Err(Error::NotRoot)
    }
}

/// What the kernel asks before one process may read another's memory (ptrace's
/// PTRACE_MODE_ATTACH check), as far as it can be told from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtraceFacts {
    /// Our real uid and gid.
    pub uid: u32,
    pub gid: u32,
    pub cap_sys_ptrace: bool,
    /// The target's real, effective, saved and filesystem uids and gids (/proc/PID/status).
    pub target_uids: Vec<u32>,
    pub target_gids: Vec<u32>,
    /// `kernel.yama.ptrace_scope`, where Yama is built in.
    pub yama_scope: Option<u32>,
    /// The target descends from us (Yama's scope 1 lets ancestors read).
    pub descendant: bool,
}

impl PtraceFacts {
    pub fn of(pid: i32) -> PtraceFacts {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let ids = |field: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        PtraceFacts {
            // SAFETY: getuid and getgid cannot fail.
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            cap_sys_ptrace: effective_caps() & CAP_SYS_PTRACE != 0,
            target_uids: ids("Uid:"),
            target_gids: ids("Gid:"),
            yama_scope: std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
            descendant: descends_from(pid, std::process::id() as i32),
        }
    }

    /// Why the kernel will refuse the read, and the remedy; None where it should allow it.
    pub fn refusal(&self) -> Option<String> {
        const AS_ROOT: &str = "run pyprobe with sudo, or give it CAP_SYS_PTRACE (sudo setcap \
                               cap_sys_ptrace+ep $(command -v pyprobe))";
        if self.yama_scope == Some(3) {
            return Some(
                "kernel.yama.ptrace_scope is 3: the kernel lets no process read another's memory, \
                 not even root's, until reboot"
                    .into(),
            );
        }
        if self.cap_sys_ptrace {
            return None;
        }
        let same = |ours: u32, theirs: &[u32]| theirs.iter().all(|&t| t == ours);
        if !self.target_uids.is_empty()
            && (!same(self.uid, &self.target_uids) || !same(self.gid, &self.target_gids))
        {
            let t = self.target_uids.first().copied().unwrap_or(0);
            return Some(format!(
                "it runs as uid {t} (gid {}) and pyprobe as uid {} (gid {}): reading another \
                 user's process (or a setuid one) needs privileges: {AS_ROOT}",
                self.target_gids.first().copied().unwrap_or(0),
                self.uid,
                self.gid
            ));
        }
        match self.yama_scope {
            Some(1) if !self.descendant => Some(format!(
                "kernel.yama.ptrace_scope is 1: only a process's ancestors may read its memory; \
                 {AS_ROOT}, or allow it for this user until reboot (sudo sysctl \
                 kernel.yama.ptrace_scope=0)"
            )),
            Some(2) => Some(format!(
                "kernel.yama.ptrace_scope is 2: only CAP_SYS_PTRACE may read another process's \
                 memory; {AS_ROOT}"
            )),
            _ => None,
        }
    }
}

/// Whether `ancestor` is `pid`'s parent, grandparent, ...
fn descends_from(pid: i32, ancestor: i32) -> bool {
    let mut p = pid;
    // A chain longer than the PID space is a loop of a racing /proc: give up.
    for _ in 0..4096 {
        if p == ancestor {
            return true;
        }
        if p <= 1 {
            return false;
        }
        let Some(parent) = std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .and_then(|v| v.trim().parse().ok())
            })
        else {
            return false;
        };
        p = parent;
    }
    false
}

/// Refuses, with the reason and the remedy, a process whose memory this user cannot read.
pub fn check_ptrace(pid: i32) -> Result<()> {
    match PtraceFacts::of(pid).refusal() {
        Some(why) => Err(Error::NoAccess { pid, why }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> PtraceFacts {
        PtraceFacts {
            uid: 1000,
            gid: 1000,
            cap_sys_ptrace: false,
            target_uids: vec![1000; 4],
            target_gids: vec![1000; 4],
            yama_scope: Some(0),
            descendant: false,
        }
    }

    #[test]
    fn ones_own_process_is_readable_where_yama_allows() {
        assert_eq!(facts().refusal(), None);
        let f = PtraceFacts {
            yama_scope: None,
            ..facts()
        };
        assert_eq!(f.refusal(), None);
        let f = PtraceFacts {
            yama_scope: Some(1),
            descendant: true,
            ..facts()
        };
        assert_eq!(f.refusal(), None);
    }

    #[test]
    fn each_refusal_names_what_is_missing() {
        let other = PtraceFacts {
            target_uids: vec![0; 4],
            target_gids: vec![0; 4],
            ..facts()
        };
        let why = other.refusal().unwrap();
        assert!(
            why.starts_with("it runs as uid 0 (gid 0) and pyprobe as uid 1000 (gid 1000)"),
            "{why}"
        );
        assert!(why.contains("CAP_SYS_PTRACE"), "{why}");
        // A setuid program keeps a saved uid of its own.
        let setuid = PtraceFacts {
            target_uids: vec![1000, 0, 0, 0],
            ..facts()
        };
        assert!(setuid.refusal().is_some());
        let yama1 = PtraceFacts {
            yama_scope: Some(1),
            ..facts()
        };
        assert!(
            yama1
                .refusal()
                .unwrap()
                .contains("kernel.yama.ptrace_scope is 1: only a process's ancestors")
        );
        let yama2 = PtraceFacts {
            yama_scope: Some(2),
            descendant: true,
            ..facts()
        };
        assert!(yama2.refusal().unwrap().contains("ptrace_scope is 2"));
        // CAP_SYS_PTRACE passes every check but Yama's 3.
        let cap = PtraceFacts {
            cap_sys_ptrace: true,
            ..other
        };
        assert_eq!(cap.refusal(), None);
        let yama3 = PtraceFacts {
            yama_scope: Some(3),
            ..cap
        };
        assert!(yama3.refusal().unwrap().contains("ptrace_scope is 3"));
    }
}
