//! `--output FILE`: checked before anything is traced, touched only once there is something to
//! write, and never written through a link or a file someone else planted in a shared directory.
//!
//! pyprobe runs as root, so a name in /tmp is dangerous: a local user can put a symlink (or, on a
//! machine with `fs.protected_hardlinks=0`, a hard link) there that leads to a file of root's.
//! In a sticky world-writable directory pyprobe does what the kernel's `fs.protected_symlinks`
//! and `fs.protected_regular` do, whatever they are set to: it follows a final symlink only when
//! the link belongs to pyprobe's user or to the directory's owner, and writes into an existing
//! file only when that file is pyprobe's user's (or the directory owner's) and has no other link.
//! An existing file is not truncated before the first byte is written, so a session refused
//! at its start (a bad PID) leaves it as it was.
//!
//! Besides regular files, an output may be a terminal, /dev/null, or a FIFO that already has a
//! reader: those are opened at the check, without blocking, and written from a thread of their
//! own (`pipe::DetachedStdout`), so a reader that stops reading never holds up the session. A
//! FIFO with no reader is refused then and there: opening it would wait for one, probes
//! attached, ignoring `--duration` and signals. Nothing is ever opened without O_NONBLOCK.
use std::ffi::CString;
use std::fs::{File, Metadata};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::pipe::DetachedStdout;
use crate::error::{Error, Result};
use crate::target::trusted::not_regular;

/// The writer for `--output path`, checked before anything is traced.
pub fn open(path: &Path) -> Result<Box<dyn Write>> {
    let refuse = |why: &str| Error::Usage(format!("--output {}: {why}", path.display()));
    let mut out = OutputFile::check(path)?;
    let Some(stream) = out.file.take() else {
        return Ok(Box::new(BufWriter::new(out)));
    };
    // Writes to a pipe or a terminal wait for their reader, in the writer thread only.
    set_blocking(&stream).map_err(|e| refuse(&e.to_string()))?;
    Ok(Box::new(DetachedStdout::to_file(
        stream,
        path.display().to_string(),
    )))
}

/// An output file, checked and not yet opened (a regular file), or opened already (a FIFO
/// with a reader, a terminal, /dev/null).
pub struct OutputFile {
    path: PathBuf,
    /// A final symlink is not followed (the directory is shared and the link is not trusted).
    nofollow: bool,
    /// Owners whose files and links may be used in a shared directory: us and its owner.
    shared_dir_owner: Option<u32>,
    file: Option<File>,
}

impl OutputFile {
    /// Checks that `path` can be written as an output, without creating or changing anything.
    pub fn check(path: &Path) -> Result<OutputFile> {
        let refuse = |why: &str| Error::Usage(format!("--output {}: {why}", path.display()));
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = std::fs::metadata(parent).map_err(|e| refuse(&e.to_string()))?;
        if !dir.is_dir() {
            return Err(refuse(&format!("{} is not a directory", parent.display())));
        }
        let shared_dir_owner = shared(&dir).then_some(dir.uid());
        let mut nofollow = shared_dir_owner.is_some();
        let existing = std::fs::symlink_metadata(path).ok();
        if let (Some(meta), Some(owner)) = (&existing, shared_dir_owner)
            && meta.file_type().is_symlink()
        {
            if !trusted(meta, owner) {
                return Err(refuse(
                    "a symbolic link of another user in a sticky world-writable directory: \
                     pyprobe does not write through it",
                ));
            }
            nofollow = false;
        }
        let mut stream = None;
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return Err(refuse("is a directory")),
            Ok(meta) => {
                if let Some(owner) = shared_dir_owner {
                    refuse_planted(&meta, owner).map_err(refuse)?;
                }
                if meta.is_file() {
                    writable(path).map_err(|e| refuse(&e.to_string()))?;
                } else {
                    stream = Some(open_stream(path, nofollow).map_err(|e| refuse(&e))?);
                }
            }
            Err(_) => writable(parent).map_err(|e| refuse(&e.to_string()))?,
        }
        Ok(OutputFile {
            path: path.to_owned(),
            nofollow,
            shared_dir_owner,
            file: stream,
        })
    }

    /// The file, opened at the first use: created if need be, emptied if it is a regular file.
    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            self.file = Some(self.open()?);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }

    fn open(&self) -> io::Result<File> {
        // O_NONBLOCK: a FIFO put under the name since the check is not waited on (and is
        // refused just below); on a regular file it changes nothing.
        let mut flags = libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        if self.nofollow {
            flags |= libc::O_NOFOLLOW;
        }
        // No O_TRUNC: what is opened is checked first.
        let file = File::options()
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(flags)
            .open(&self.path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENXIO) => io::Error::other(format!(
                    "{} is now a FIFO with no reader",
                    self.path.display()
                )),
                _ => e,
            })?;
        let meta = file.metadata()?;
        if let Some(kind) = not_regular(&meta) {
            return Err(io::Error::other(format!(
                "{} is now {kind}, no longer the regular file it was when checked",
                self.path.display()
            )));
        }
        if let Some(owner) = self.shared_dir_owner {
            refuse_planted(&meta, owner).map_err(io::Error::other)?;
        }
        file.set_len(0)?;
        Ok(file)
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    /// A session that ends with nothing to write still leaves its (empty) output, never the
    /// results of an earlier run.
    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

/// Opens an output that is not a regular file, if it is one pyprobe writes to: a FIFO that has
/// a reader, a terminal or /dev/null. Never waits.
fn open_stream(path: &Path, nofollow: bool) -> std::result::Result<File, String> {
    let mut flags = libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = File::options()
        .write(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // A FIFO opened for writing without O_NONBLOCK waits for a reader, forever.
            Some(libc::ENXIO) => "a FIFO with no reader: pyprobe would wait for one with its \
                                  probes attached (start the reader first)"
                .to_string(),
            _ => e.to_string(),
        })?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let kind = meta.file_type();
    // SAFETY: isatty on a descriptor we hold.
    let terminal = unsafe { libc::isatty(file.as_raw_fd()) } == 1;
    let null = kind.is_char_device() && meta.rdev() == libc::makedev(1, 3);
    if kind.is_fifo() || terminal || null {
        return Ok(file);
    }
    Err(format!(
        "is {}: pyprobe writes to a regular file, a FIFO with a reader, a terminal or /dev/null",
        not_regular(&meta).unwrap_or("a special file")
    ))
}

/// Clears O_NONBLOCK: the writer thread waits for a slow reader, the session does not.
fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we hold, reading then setting its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A sticky, world-writable directory: /tmp, /var/tmp, /dev/shm.
fn shared(dir: &Metadata) -> bool {
    dir.mode() & 0o1002 == 0o1002
}

/// A file or link in a shared directory that only we or the directory's owner could have put
/// there.
fn trusted(meta: &Metadata, dir_owner: u32) -> bool {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    meta.uid() == me || meta.uid() == dir_owner
}

fn refuse_planted(meta: &Metadata, dir_owner: u32) -> std::result::Result<(), &'static str> {
    if !trusted(meta, dir_owner) {
        return Err(
            "a file of another user in a sticky world-writable directory: \
                    pyprobe does not write into it",
        );
    }
    if meta.is_file() && meta.nlink() > 1 {
        return Err(
            "a file with another hard link, in a sticky world-writable directory: \
                    pyprobe does not write through it",
        );
    }
    Ok(())
}

fn writable(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: access reads a NUL-terminated path and touches nothing.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pyprobe-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_existing_file_is_emptied_only_at_the_first_write() {
        let d = scratch("late");
        let p = d.join("out.txt");
        std::fs::write(&p, "earlier results\n").unwrap();
        let mut out = OutputFile::check(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "earlier results\n");
        out.write_all(b"new\n").unwrap();
        out.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_missing_directory_is_named_before_anything_runs() {
        let err = OutputFile::check(Path::new("/no/such/dir/out.json"))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("--output /no/such/dir/out.json"),
            "{err}"
        );
    }

    fn mkfifo(p: &Path) {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_without_reader_is_refused_and_one_with_a_reader_is_written() {
        let d = scratch("fifo");
        let p = d.join("out");
        mkfifo(&p);
        let err = OutputFile::check(&p).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "--output {}: a FIFO with no reader: pyprobe would wait for one with its probes \
                 attached (start the reader first)",
                p.display()
            )
        );
        let mut reader = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        let mut out = open(&p).unwrap();
        out.write_all(b"results\n").unwrap();
        drop(out);
        let mut got = String::new();
        io::Read::read_to_string(&mut reader, &mut got).unwrap();
        assert_eq!(got, "results\n");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn devices_other_than_null_are_refused() {
        let mut out = open(Path::new("/dev/null")).unwrap();
        out.write_all(b"gone\n").unwrap();
        let err = OutputFile::check(Path::new("/dev/zero")).err().unwrap();
        assert_eq!(
            err.to_string(),
            "--output /dev/zero: is a character device: pyprobe writes to a regular file, a \
             FIFO with a reader, a terminal or /dev/null"
        );
    }

    #[test]
    fn a_file_with_another_link_in_a_shared_directory_is_refused() {
        let d = scratch("hardlink");
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
        let precious = d.join("precious");
        std::fs::write(&precious, "keep\n").unwrap();
        std::fs::hard_link(&precious, d.join("out")).unwrap();
        let err = OutputFile::check(&d.join("out")).err().unwrap();
        assert!(err.to_string().contains("another hard link"), "{err}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep\n");
        std::fs::remove_dir_all(d).unwrap();
    }
}
