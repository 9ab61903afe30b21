//! The traced process's files, reached the way it reaches them and never beyond: paths resolved
//! inside its root, mapped files through the kernel's own link to the mapping, regular files of
//! an interpreter's size only, and what is read from them bounded.
//!
//! A process pyprobe is pointed at may be hostile (a container, a jail). Walking
//! `/proc/PID/root/PATH` resolves an absolute symlink against pyprobe's own root, so a jail's
//! `libpython3.11.so.1.0 -> /etc/shadow` would have pyprobe open the host's file; a link to a
//! FIFO blocks `open()`; `/dev/zero` never ends. Here every open either yields a regular file no
//! larger than `MAX_FILE_BYTES` or fails with why, without blocking.
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::Mapping;

/// No interpreter file is this large (Debian's python3.11 is 7 MB, a libpython with full debug
/// information about 30 MB, an application that embeds CPython statically a few hundred MB):
/// anything larger is refused unread.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// How much of an interpreter file one parse may read (headers, notes, symbol tables, a few
/// symbols' first bytes): about 1 MB for CPython's own files, more for a large embedder's
/// symbol tables.
pub const MAX_READ_BYTES: u64 = 256 << 20;

/// Why a file of the target was not opened or not used.
#[derive(Debug)]
pub enum Refusal {
    /// Nothing there (or not reachable inside the target's root).
    Missing,
    /// Something other than a regular file; the kind, in words.
    NotRegular(&'static str),
    TooLarge(u64),
    /// Not the file the target has mapped (device and inode differ).
    Replaced,
    Io(io::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing => f.write_str("no such file in its root"),
            Refusal::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            Refusal::TooLarge(n) => write!(
                f,
                "it is {:.1} GiB, larger than any interpreter (pyprobe opens files of at most {} GiB)",
                *n as f64 / (1u64 << 30) as f64,
                MAX_FILE_BYTES >> 30
            ),
            Refusal::Replaced => f.write_str(
                "it is not the file the process has mapped (its device and inode differ)",
            ),
            Refusal::Io(e) => e.fmt(f),
        }
    }
}

impl From<io::Error> for Refusal {
    fn from(e: io::Error) -> Refusal {
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => Refusal::Missing,
            _ => Refusal::Io(e),
        }
    }
}

/// A regular file of the target, open, with the identity it had when it was checked.
#[derive(Debug)]
pub struct TargetFile {
    file: File,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
}

impl TargetFile {
    /// Takes an opened file if it is a regular file of an interpreter's size.
    fn checked(file: File) -> Result<TargetFile, Refusal> {
        let meta = file.metadata()?;
        if let Some(what) = crate::target::trusted::not_regular(&meta) {
            return Err(Refusal::NotRegular(what));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(Refusal::TooLarge(meta.len()));
        }
        Ok(TargetFile {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
        })
    }

    /// Opens a file of pyprobe's own side under the same checks.
    pub fn open_local(path: &Path) -> Result<TargetFile, Refusal> {
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)?;
        TargetFile::checked(file)
    }

    /// A reader of the file from its start that fails past `MAX_READ_BYTES`.
    pub fn reader(&self) -> io::Result<Bounded<File>> {
        let file = self.file.try_clone()?;
        Ok(Bounded {
            inner: file,
            left: MAX_READ_BYTES,
        })
    }

    /// Up to `len` bytes at `offset`.
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut f = self.reader()?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len.min(1 << 20));
        f.take(len as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// A path that names this very file (the descriptor pyprobe holds), for interfaces that take
    /// a path, such as libbpf's uprobe and USDT attachment: the kernel resolves it once, at
    /// attach, and nothing the target does can make it name another file. Checked again here.
    pub fn pinned_path(&self) -> io::Result<PathBuf> {
        let path = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
        let meta = std::fs::metadata(&path)?;
        if (meta.dev(), meta.ino()) != (self.dev, self.ino) {
            return Err(io::Error::other(
                "the descriptor pyprobe holds no longer names the file it checked",
            ));
        }
        Ok(path)
    }
}

/// A reader that fails once it has read its budget: a parser led astray by a crafted file
/// stops there instead of reading the whole of it.
pub struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 && !buf.is_empty() {
            return Err(io::Error::other(format!(
                "read more than {} MiB of it",
                MAX_READ_BYTES >> 20
            )));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Bounded<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// The target's root directory, held open: paths are resolved inside it as the target resolves
/// them (its absolute symlinks lead to its own `/`, `..` stops at it), even once the process
/// is gone.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
}

impl Root {
    pub fn of(pid: i32) -> io::Result<Root> {
        let dir = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(format!("/proc/{pid}/root"))?;
        Ok(Root { dir: dir.into() })
    }

    /// Opens `path` (as the target names it) for reading if it is a regular file of an
    /// interpreter's size; never blocks (a FIFO or a device is refused, not waited on).
    pub fn open_regular(&self, path: &str) -> Result<TargetFile, Refusal> {
        let fd = self.resolve(
            &self.dir,
            path,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        )?;
        TargetFile::checked(File::from(fd))
    }

    /// A directory of the target (as it names it), for creating and removing files in it.
    pub fn dir(&self, path: &str) -> io::Result<Dir> {
        let fd = self.resolve(&self.dir, path, libc::O_PATH | libc::O_DIRECTORY)?;
        Ok(Dir { fd })
    }

    fn resolve(&self, at: &OwnedFd, path: &str, flags: i32) -> io::Result<OwnedFd> {
        openat2(
            at,
            path,
            flags | libc::O_CLOEXEC,
            0,
            // Absolute links and `..` stay inside the root; magic links (/proc/*/root, fd
            // links in a procfs mounted inside) would lead out of it.
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        )
    }
}

/// A directory of the target, held open: names in it are never followed as links.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// Creates `name` for writing; fails if anything (a file, a link) already has the name.
    pub fn create_new(&self, name: &str, mode: u32) -> io::Result<File> {
        let fd = openat2(
            &self.fd,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        )?;
        Ok(File::from(fd))
    }

    /// Opens `name` for reading if it is a regular file (a link is not followed).
    pub fn open(&self, name: &str) -> Result<TargetFile, Refusal> {
        let fd = openat2(
            &self.fd,
            name,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        )?;
        TargetFile::checked(File::from(fd))
    }

    /// Reads `name`, at most `limit` bytes, if it is a regular file (a link is not followed).
    pub fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, Refusal> {
        let file = self.open(name)?;
        let mut buf = Vec::new();
        file.file.take(limit).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// The status of `name` if it is a regular file (a link is not followed).
    pub fn regular_file(&self, name: &str) -> Option<std::fs::Metadata> {
        let fd = openat2(
            &self.fd,
            name,
            libc::O_PATH | libc::O_CLOEXEC,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        )
        .ok()?;
        let meta = File::from(fd).metadata().ok()?;
        meta.file_type().is_file().then_some(meta)
    }

    /// Removes `name` if it is a regular file (never a link's target: links are not followed).
    pub fn remove_regular(&self, name: &str) {
        if self.regular_file(name).is_none() {
            return;
        }
        let Ok(c) = CString::new(name) else { return };
        // SAFETY: unlinkat with our directory descriptor and a NUL-terminated name.
        unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) };
    }
}

/// Opens a file the target has mapped through the kernel's link to that very mapping
/// (`/proc/PID/map_files/START-END`), and checks that it is still what `/proc/PID/maps` said:
/// the same device and inode. Falls back to the mapped path inside the target's root, with the
/// same check, where map_files is closed to pyprobe (it needs CAP_SYS_ADMIN).
pub fn open_mapped(pid: i32, root: &Root, m: &Mapping, path: &str) -> Result<TargetFile, Refusal> {
    let link = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    let opened = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&link);
    let file = match opened {
        Ok(f) => TargetFile::checked(f)?,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => root.open_regular(path)?,
        Err(e) => return Err(e.into()),
    };
    if (file.dev, file.ino) == (m.dev, m.inode) || shown_as_layer(&file, pid, m) {
        Ok(file)
    } else {
        Err(Refusal::Replaced)
    }
}

/// The target's executable through the kernel's link to it (`/proc/PID/exe`).
pub fn open_exe(pid: i32) -> Result<TargetFile, Refusal> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/{pid}/exe"))?;
    TargetFile::checked(file)
}

/// Before Linux 6.8, /proc/PID/maps shows a file on overlayfs (a container's image) by the
/// device and inode of the layer below, while opening it gives overlayfs' own: there, the
/// mapping found again unchanged after the open stands in for the match.
fn shown_as_layer(file: &TargetFile, pid: i32, m: &Mapping) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    // SAFETY: fstatfs fills the struct we own for a descriptor we hold.
    let on_overlay = unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::fstatfs(file.file.as_fd().as_raw_fd(), &mut s) == 0
            && s.f_type as i64 == OVERLAYFS_SUPER_MAGIC
    };
    on_overlay
        && std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .is_ok_and(|t| super::parse_maps(&t).contains(m))
}

fn openat2(at: &OwnedFd, path: &str, flags: i32, mode: u32, resolve: u64) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is plain integers; all zero is its default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve;
    loop {
        // SAFETY: openat2 with a directory descriptor we hold, a NUL-terminated path and an
        // open_how of the size we pass; it returns a new descriptor or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                at.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a descriptor the kernel just gave us, owned from here on.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = io::Error::last_os_error();
        // RESOLVE_IN_ROOT asks to retry when a rename raced with the walk.
        if !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
            return Err(e);
        }
    }
}

/// The target's view of a path pyprobe sees from its own root: /proc/PID/exe and maps name a
/// chroot's files from our root (`/srv/jail/usr/bin/python3`); the target knows them without
/// the jail's prefix. A container in another mount namespace is shown from its own root.
pub fn in_root_path(root_as_seen: &Path, path: &str) -> String {
    let prefix = root_as_seen.to_string_lossy();
    if prefix == "/" {
        return path.to_string();
    }
    match path.strip_prefix(prefix.as_ref()) {
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_the_prefix_of_a_jail_seen_from_here() {
        let jail = Path::new("/srv/jail");
        assert_eq!(
            in_root_path(jail, "/srv/jail/usr/bin/python3"),
            "/usr/bin/python3"
        );
        assert_eq!(in_root_path(jail, "/srv/jail2/bin/x"), "/srv/jail2/bin/x");
        assert_eq!(in_root_path(Path::new("/"), "/usr/bin/x"), "/usr/bin/x");
    }

    #[test]
    fn a_bounded_reader_stops_at_its_budget() {
        let mut r = Bounded {
            inner: io::repeat(0),
            left: 10,
        };
        let mut buf = [1u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 8);
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        assert!(r.read(&mut buf).is_err());
    }

    #[test]
    fn only_regular_files_of_bounded_size_pass() {
        let root = Root::of(std::process::id() as i32).unwrap();
        assert!(matches!(
            root.open_regular("/dev/zero"),
            Err(Refusal::NotRegular("a character device"))
        ));
        assert!(matches!(
            root.open_regular("/"),
            Err(Refusal::NotRegular("a directory"))
        ));
        assert!(matches!(
            root.open_regular("/no/such/file"),
            Err(Refusal::Missing)
        ));
        let exe = std::env::current_exe().unwrap();
        let f = root.open_regular(exe.to_str().unwrap()).unwrap();
        assert!(f.size > 0);
        let pinned = f.pinned_path().unwrap();
        assert!(pinned.starts_with("/proc/self/fd/"));
    }
}
