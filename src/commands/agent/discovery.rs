//! Finding the host's Python processes: every process in /proc (containers and chroots
//! included), told apart from a later process that reuses its PID by its start time, and its
//! labels (comm, container).
use std::fs;

/// A process as /proc shows it, before anything is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub pid: i32,
    /// Clock ticks after boot (field 22 of /proc/PID/stat): a reused PID has another.
    pub start_time: u64,
}

/// Every process (thread-group leader) now running.
pub fn processes() -> Vec<Seen> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            Some(Seen {
                pid,
                start_time: start_time(pid)?,
            })
        })
        .collect()
}

/// The process's start time, None once it has exited (a zombie not yet reaped included).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The process's command name, as the process set it (any bytes: not UTF-8 ones are replaced,
/// not lost; log lines escape it).
pub fn comm(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/comm"))
        .map(|c| String::from_utf8_lossy(&c).trim_end().to_string())
        .unwrap_or_default()
}

/// Cheap test before reading any ELF file: the executable's name says python, or a
/// libpython is mapped (an embedding program: uwsgi, a game, a plugin host).
pub fn may_be_python(pid: i32) -> bool {
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .ok()
        .flatten();
    match exe {
        None => false, // a kernel thread, or gone
        Some(name) if name.contains("python") => true,
        Some(_) => {
            fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains("libpython"))
        }
    }
}

/// The container a process runs in: the id in its cgroup path (Docker, containerd, CRI-O,
/// Podman name the cgroup after the 64-hex-digit id), else the root directory of a chrooted
/// process; empty for the host's own.
pub fn container(pid: i32) -> String {
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    if let Some(id) = container_id(&cgroup) {
        return id;
    }
    let root = fs::read_link(format!("/proc/{pid}/root"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A process in another mount namespace shows "/" here; only a chroot shows a path.
    if root != "/" && !root.is_empty() {
        return root;
    }
    String::new()
}

/// The 64-hex-digit id in a /proc/PID/cgroup text, shortened to 12 digits as `docker ps`
/// shows it.
fn container_id(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.split(['/', '-', '.', ':'])
            .find(|part| part.len() == 64 && part.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|id| id[..12].to_string())
    })
}

/// An interpreter file's identity, however many paths (containers, chroots) reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_container_ids_in_cgroup_paths() {
        let id = "4f3c1d2e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
        let docker = format!("0::/system.slice/docker-{id}.scope\n");
        assert_eq!(container_id(&docker).as_deref(), Some("4f3c1d2e5a6b"));
        let k8s = format!("0::/kubepods/burstable/pod1234/cri-containerd-{id}.scope\n");
        assert_eq!(container_id(&k8s).as_deref(), Some("4f3c1d2e5a6b"));
        let v1 = format!("12:memory:/docker/{id}\n");
        assert_eq!(container_id(&v1).as_deref(), Some("4f3c1d2e5a6b"));
        assert_eq!(container_id("0::/user.slice/session-3.scope\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert!(processes().iter().any(|p| p.pid == me));
        assert!(!comm(me).is_empty());
        assert_eq!(start_time(i32::MAX), None);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(start_time(pid), None, "a zombie has exited");
        child.wait().unwrap();
    }
}
