//! pyprobe's own input files (the agent's web config, its certificate and key): read only if
//! nobody but root or pyprobe's user could have written them or the way to them, without
//! blocking, and no more than a size cap.
//!
//! pyprobe runs as root, so whoever can write such a file (or swap a directory or a link on
//! the way to it) decides what root does with it: which users the agent lets in, which key it
//! serves. And a FIFO blocks `open()` forever, `/dev/zero` never ends: both are refused here
//! before a byte is read.
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Config and PEM files are a few KiB; anything past this is not one.
pub const MAX_BYTES: u64 = 1 << 20;

/// Symbolic links followed on the way to one file, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// Why a file was not read, in words that follow its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Others than root and pyprobe's user could change it or the way to it.
    OthersMayWrite(String),
    /// Not a regular file, too large, or not there.
    Unfit(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::OthersMayWrite(why) | Refusal::Unfit(why) => f.write_str(why),
        }
    }
}

impl From<String> for Refusal {
    fn from(why: String) -> Refusal {
        Refusal::Unfit(why)
    }
}

/// Reads `path` whole if it is a regular file of at most `MAX_BYTES` that only root or
/// pyprobe's user can change; otherwise says why.
pub fn read(path: &Path) -> Result<Vec<u8>, Refusal> {
    let resolved = resolve(path)?;
    // O_NONBLOCK: whatever the checks above saw, an open never waits for a FIFO's writer.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&resolved)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if let Some(kind) = not_regular(&meta) {
        return Err(format!("it is {kind}, not a regular file").into());
    }
    if let Some(why) = others_may_write(&meta) {
        return Err(Refusal::OthersMayWrite(format!(
            "{} {why}",
            resolved.display()
        )));
    }
    if meta.len() > MAX_BYTES {
        return Err(too_large().into());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read is still cut at the cap.
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_large().into());
    }
    Ok(bytes)
}

fn too_large() -> String {
    format!("it is larger than {} MiB", MAX_BYTES >> 20)
}

/// Walks `path` one name at a time from `/`, following links by hand, and returns the file it
/// leads to once every directory on the way and every link followed is trusted: owned by root
/// or us, and (directories) not writable by others unless sticky, as /tmp is.
fn resolve(path: &Path) -> Result<PathBuf, Refusal> {
    let start = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join(path)
    };
    let mut todo: VecDeque<OsString> = names(&start);
    let mut at = PathBuf::from("/");
    check_dir(&at)?;
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&name);
        let meta = std::fs::symlink_metadata(&next).map_err(|e| e.to_string())?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(format!("more than {MAX_LINKS} symbolic links on the way").into());
            }
            if !owned_by_us(&meta) {
                return Err(Refusal::OthersMayWrite(format!(
                    "{} is a symbolic link of user {}",
                    next.display(),
                    meta.uid()
                )));
            }
            let target = std::fs::read_link(&next).map_err(|e| e.to_string())?;
            if target.is_absolute() {
                at = PathBuf::from("/");
            }
            for n in names(&target).into_iter().rev() {
                todo.push_front(n);
            }
            continue;
        }
        at = next;
        if meta.is_dir() && !todo.is_empty() {
            check_dir(&at)?;
        }
    }
    Ok(at)
}

/// The names of a path, `.` dropped (`..` kept: it is resolved against links followed).
fn names(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

fn check_dir(dir: &Path) -> Result<(), Refusal> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !owned_by_us(&meta) {
        return Err(Refusal::OthersMayWrite(format!(
            "its directory {} belongs to user {}",
            dir.display(),
            meta.uid()
        )));
    }
    let sticky = meta.mode() & libc::S_ISVTX != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(Refusal::OthersMayWrite(format!(
            "its directory {} is writable by others (mode {:o})",
            dir.display(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Why others than root and us could change the file itself, if they can.
fn others_may_write(meta: &Metadata) -> Option<String> {
    if !owned_by_us(meta) {
        return Some(format!("belongs to user {}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "is writable by others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    None
}

fn owned_by_us(meta: &Metadata) -> bool {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    meta.uid() == 0 || meta.uid() == me
}

/// The kind of a file that is not a regular one, in words.
pub fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_dir() {
        Some("a directory")
    } else {
        Some("a special file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A directory of this test (mode 0755), removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let d =
                std::env::temp_dir().join(format!("pyprobe-trusted-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::set_permissions(&d, PermissionsExt::from_mode(0o755)).unwrap();
            Scratch(d)
        }

        /// `web.yml` in it, holding `x: 1`, with this mode.
        fn web_yml(&self, mode: u32) -> PathBuf {
            let f = self.0.join("web.yml");
            std::fs::write(&f, "x: 1\n").unwrap();
            chmod(&f, mode);
            f
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, PermissionsExt::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_file_of_ours_is_read_through_a_link_of_ours() {
        let s = Scratch::new("ok");
        let f = s.web_yml(0o600);
        std::os::unix::fs::symlink("web.yml", s.0.join("link.yml")).unwrap();
        assert_eq!(read(&f).unwrap(), b"x: 1\n");
        assert_eq!(read(&s.0.join("link.yml")).unwrap(), b"x: 1\n");
        // `sub` does not exist: the walk looks at each name, as the kernel would.
        assert_eq!(
            read(&s.0.join("sub/../web.yml")).unwrap_err().to_string(),
            "No such file or directory (os error 2)"
        );
    }

    #[test]
    fn what_others_may_write_is_refused() {
        let s = Scratch::new("writable");
        let f = s.web_yml(0o666);
        let err = read(&f).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{} is writable by others (mode 666)", f.display())
        );
        chmod(&f, 0o620);
        assert!(read(&f).unwrap_err().to_string().contains("mode 620"));
        chmod(&f, 0o644);
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        assert!(
            read(&f)
                .unwrap_err()
                .to_string()
                .contains("belongs to user 65534")
        );
        std::os::unix::fs::chown(&f, Some(0), None).unwrap();

        // The directory: writable by others without the sticky bit, then with it.
        chmod(&s.0, 0o777);
        let err = read(&f).unwrap_err().to_string();
        assert!(err.contains("is writable by others (mode 777)"), "{err}");
        assert!(err.contains(&format!("its directory {}", s.0.display())));
        chmod(&s.0, 0o1777);
        assert!(read(&f).is_ok());

        // A link of another user in that sticky directory.
        let link = s.0.join("planted.yml");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        assert_eq!(
            read(&link).unwrap_err(),
            Refusal::OthersMayWrite(format!(
                "{} is a symbolic link of user 65534",
                link.display()
            ))
        );
    }

    #[test]
    fn devices_fifos_and_large_files_are_refused_unread() {
        assert_eq!(
            read(Path::new("/dev/zero")).unwrap_err().to_string(),
            "it is a character device, not a regular file"
        );
        let s = Scratch::new("kinds");
        let fifo = s.0.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(
            read(&fifo).unwrap_err().to_string(),
            "it is a FIFO, not a regular file"
        );
        assert_eq!(
            read(&s.0).unwrap_err().to_string(),
            "it is a directory, not a regular file"
        );
        let big = s.0.join("big");
        File::create(&big).unwrap().set_len(MAX_BYTES + 1).unwrap();
        assert_eq!(
            read(&big).unwrap_err().to_string(),
            "it is larger than 1 MiB"
        );
        File::create(&big).unwrap().set_len(MAX_BYTES).unwrap();
        assert_eq!(read(&big).unwrap().len() as u64, MAX_BYTES);
    }
}
