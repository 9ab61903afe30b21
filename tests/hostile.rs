//! pyprobe against what could turn it against its host or its target: a jail whose interpreter
//! files lead to host files, devices, FIFOs or huge files; an output name planted in a shared
//! directory; and code from a file whose name CPython's own probe code cannot encode.
mod common;

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{Guard, Pyprobe, Python, TempDir, Workload};

/// A directory of this test, removed with everything in it when dropped.
struct Scratch(TempDir);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(TempDir::new(&format!("hostile-{name}")))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }

    /// Makes it shared like /tmp: sticky and writable by everyone.
    fn shared(self) -> Scratch {
        std::fs::set_permissions(self.0.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        self
    }

    /// A file `victim` that says "precious", and a link `name` to it: (victim, link).
    fn link_to_precious(&self, name: &str) -> (PathBuf, PathBuf) {
        let victim = self.path("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let link = self.path(name);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        (victim, link)
    }
}

/// `pyprobe COMMAND --pid PID -d SECONDS -o OUT` on a target, run to its end (killed after
/// `limit`).
fn traced_into(
    target: &Guard,
    command: &str,
    seconds: &str,
    out: &Path,
    limit: Duration,
) -> Output {
    let pid = target.pid().to_string();
    Pyprobe::new(&[
        command,
        "--pid",
        &pid,
        "-d",
        seconds,
        "-o",
        out.to_str().unwrap(),
    ])
    .within(limit)
}

/// `pyflow -o OUT -- python3.11 -c CODE` run to its end.
fn flow_into(out: &Path, code: &str) -> Output {
    Pyprobe::new(&[
        "flow",
        "-o",
        out.to_str().unwrap(),
        "--",
        common::PYTHON,
        "-c",
        code,
    ])
    .run()
}

/// pyflow's text of `def traced(): pass; traced()`.
fn assert_traced_flow(written: &str) {
    assert!(written.starts_with("    TIME(us)"), "{written}");
    assert!(written.contains("-> <string>:1 traced"), "{written}");
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A hostile jail: pyprobe starts `chroot JAIL python3.11`, a pyenv build whose executable needs
// libpython3.11.so.1.0, and finds that library in the jail at the exec stop, before the loader
// maps it. Each test plants something else under that name.

const LIBPYTHON: &str = "usr/local/lib/libpython3.11.so.1.0";

/// A chroot with just what it takes to exec the interpreter: the executable and the dynamic
/// loader (libpython is each test's, and nothing else is there, so the command never runs).
fn jail(s: &Scratch) -> PathBuf {
    let jail = s.path("jail");
    for dir in ["usr/local/bin", "usr/local/lib", "lib64", "dev"] {
        std::fs::create_dir_all(jail.join(dir)).unwrap();
    }
    std::fs::copy(
        Python::pyenv("3.11").exe,
        jail.join("usr/local/bin/python3.11"),
    )
    .unwrap();
    std::fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        jail.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    jail
}

/// `pycount -- chroot JAIL python3.11`, given 30 s (a pyprobe blocked that long is killed, and
/// its status then has no code).
fn trace_in_jail(jail: &Path) -> Output {
    Pyprobe::new(&["count", "--", "chroot"])
        .arg(jail)
        .arg("/usr/local/bin/python3.11")
        .arg("-c")
        .arg("pass")
        .within(Duration::from_secs(30))
}

/// pyprobe's own lines on stderr (the jailed loader may add one of its own).
fn pyprobe_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("pyprobe"))
        .map(str::to_string)
        .collect()
}

/// Refused with one line that says `why`, exit status 1, and the command pyprobe held at its
/// exec is gone (not left stopped under ptrace).
fn assert_refused(out: &Output, why: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines = pyprobe_lines(out);
    assert_eq!(lines.len(), 1, "one line expected:\n{err}");
    let line = &lines[0];
    let expected =
        format!("pyprobe: error: refusing PID {{}}'s /usr/local/lib/libpython3.11.so.1.0: {why}");
    let pid: i32 = line
        .strip_prefix("pyprobe: error: refusing PID ")
        .and_then(|rest| rest.split('\'').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?} is not {expected:?}"));
    assert_eq!(line, &expected.replace("{}", &pid.to_string()));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the command pyprobe started (PID {pid}) outlived it"
    );
}

/// Opens of one file, seen by inotify.
struct OpenWatch {
    fd: std::os::fd::OwnedFd,
}

impl OpenWatch {
    fn new(path: &Path) -> OpenWatch {
        use std::os::fd::FromRawFd;
        // SAFETY: inotify_init1 returns a new descriptor or -1; the watch names a path we made.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0);
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let mask = libc::IN_OPEN | libc::IN_ACCESS;
        use std::os::fd::AsRawFd;
        let w = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c_path(path).as_ptr(), mask) };
        assert!(w >= 0, "{}", std::io::Error::last_os_error());
        OpenWatch { fd }
    }

    fn seen(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 4096];
        // SAFETY: reading into our buffer from our non-blocking descriptor.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        n > 0
    }
}

#[test]
fn a_jails_link_to_a_host_file_never_reaches_the_host() {
    let s = Scratch::new("host-file");
    let jail = jail(&s);
    // A host file, named by the jail's absolute link: inside the jail that path leads nowhere.
    let secret = s.path("secret");
    std::fs::write(&secret, "the host's, not the jail's\n").unwrap();
    std::os::unix::fs::symlink(&secret, jail.join(LIBPYTHON)).unwrap();
    let opens = OpenWatch::new(&secret);
    let out = trace_in_jail(&jail);
    assert!(
        !opens.seen(),
        "pyprobe opened the host's {}",
        secret.display()
    );
    // The jail has no libpython: its loader fails, and pyprobe says the command never ran Python.
    assert_eq!(out.status.code(), Some(1));
    let lines = pyprobe_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("it exited before running a Python interpreter"),
        "{lines:?}"
    );
}

#[test]
fn a_jails_link_to_a_device_is_refused() {
    let s = Scratch::new("device");
    let jail = jail(&s);
    let zero = c_path(&jail.join("dev/zero"));
    // SAFETY: mknod of a path we made, as root.
    let made = unsafe { libc::mknod(zero.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
    assert_eq!(made, 0, "{}", std::io::Error::last_os_error());
    std::os::unix::fs::symlink("/dev/zero", jail.join(LIBPYTHON)).unwrap();
    assert_refused(
        &trace_in_jail(&jail),
        "it is a character device, not a regular file",
    );
}

#[test]
fn a_jails_link_to_a_fifo_is_refused_without_blocking() {
    let s = Scratch::new("fifo");
    let jail = jail(&s);
    // The same absolute path is a FIFO on the host and in the jail: resolved from the host it
    // would block pyprobe in open(); inside the jail it is refused unopened.
    let fifo = s.path("fifo");
    let inside = jail.join(fifo.strip_prefix("/").unwrap());
    for f in [&fifo, &inside] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        // SAFETY: mkfifo of a path we made.
        assert_eq!(unsafe { libc::mkfifo(c_path(f).as_ptr(), 0o600) }, 0);
    }
    std::os::unix::fs::symlink(&fifo, jail.join(LIBPYTHON)).unwrap();
    assert_refused(&trace_in_jail(&jail), "it is a FIFO, not a regular file");
}

#[test]
fn a_huge_sparse_libpython_is_refused_unread() {
    let s = Scratch::new("sparse");
    let jail = jail(&s);
    // A real libpython, grown to 4 GiB of holes: a valid ELF file that no interpreter is.
    let real = PathBuf::from(Python::pyenv("3.11").exe)
        .parent()
        .unwrap()
        .join("../lib/libpython3.11.so.1.0");
    let lib = jail.join(LIBPYTHON);
    std::fs::copy(real, &lib).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lib)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    assert_refused(
        &trace_in_jail(&jail),
        "it is 4.0 GiB, larger than any interpreter (pyprobe opens files of at most 1 GiB)",
    );
}

// ---------------------------------------------------------------------------------------------
// --output FILE.

#[test]
fn a_bad_pid_leaves_an_output_and_what_it_links_to_untouched() {
    let s = Scratch::new("output-bad-pid").shared();
    let (victim, link) = s.link_to_precious("x");
    let earlier = s.path("flow.txt");
    std::fs::write(&earlier, "earlier results\n").unwrap();
    for out in [&link, &earlier] {
        let o = Pyprobe::new(&["flow", "--pid", "4194304", "-o", out.to_str().unwrap()]).run();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.trim(), "pyprobe: error: no process with PID 4194304");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(
        std::fs::read_to_string(&earlier).unwrap(),
        "earlier results\n"
    );

    // A run that traces replaces the earlier results with its own.
    let o = flow_into(&earlier, "def traced(): pass\ntraced()");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written = std::fs::read_to_string(&earlier).unwrap();
    assert_traced_flow(&written);
    assert!(!written.contains("earlier results"), "{written}");
}

#[test]
fn a_link_of_another_user_in_a_shared_directory_is_not_followed() {
    let s = Scratch::new("output-planted").shared();
    let (victim, link) = s.link_to_precious("out.txt");
    // SAFETY: lchown of the link we made: as if user nobody had planted it.
    assert_eq!(
        unsafe { libc::lchown(c_path(&link).as_ptr(), 65534, 65534) },
        0
    );
    let o = flow_into(&link, "pass");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "pyprobe: error: --output {}: a symbolic link of another user in a sticky \
             world-writable directory: pyprobe does not write through it",
            link.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

fn mkfifo(p: &Path) {
    // SAFETY: mkfifo of a path we made.
    assert_eq!(unsafe { libc::mkfifo(c_path(p).as_ptr(), 0o600) }, 0);
}

/// The read end of a FIFO, opened without waiting for a writer, never read.
fn fifo_reader(p: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .unwrap()
}

#[test]
fn an_output_fifo_without_reader_is_refused_before_anything_attaches() {
    let s = Scratch::new("output-fifo");
    let fifo = s.path("ofifo");
    mkfifo(&fifo);
    let target = Workload::script("forever.py").ready();
    let started = std::time::Instant::now();
    let o = traced_into(&target, "count", "1", &fifo, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "pyprobe: error: --output {}: a FIFO with no reader: pyprobe would wait for one with \
             its probes attached (start the reader first)",
            fifo.display()
        )
    );
    // It used to wait in open() for ten minutes, past -d and SIGTERM.
    assert!(started.elapsed() < Duration::from_secs(3), "{err}");
    assert!(common::uprobes_in(target.pid()).is_empty());
    assert!(
        common::semaphores(target.pid())
            .iter()
            .all(|(_, v)| *v == 0)
    );
}

#[test]
fn an_output_fifo_with_a_reader_gets_the_results() {
    let s = Scratch::new("output-fifo-read");
    let fifo = s.path("ofifo");
    mkfifo(&fifo);
    // The reader: a thread of this test, there before pyprobe starts, reading as it writes
    // (the interpreter's start alone is more than a pipe holds).
    let mut reader = fifo_reader(&fifo);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = done.clone();
    let reading = std::thread::spawn(move || {
        use std::io::Read;
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match reader.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                // No writer (not yet, or no more): over once pyprobe has ended.
                Ok(_) if finished.load(std::sync::atomic::Ordering::SeqCst) => break,
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("reading the FIFO: {e}"),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    let o = flow_into(&fifo, "def traced(): pass\ntraced()");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = reading.join().unwrap();
    assert_traced_flow(&written);
}

#[test]
fn an_output_fifo_whose_reader_never_reads_does_not_hold_the_session() {
    let s = Scratch::new("output-fifo-stuck");
    let fifo = s.path("ofifo");
    mkfifo(&fifo);
    // Held open, never read: pyflow on a busy target writes far more than the pipe holds.
    let _unread = fifo_reader(&fifo);
    let target = Workload::script("forever.py").ready();
    let o = traced_into(&target, "flow", "2", &fifo, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "bytes of output not written to {}",
            fifo.display()
        )),
        "{err}"
    );
    assert!(
        common::semaphores(target.pid())
            .iter()
            .all(|(_, v)| *v == 0)
    );
}

// ---------------------------------------------------------------------------------------------
// A file name that is not UTF-8: CPython 3.6-3.11's code behind the function and line probes
// fails on it inside the program (versions::NameHazard).

/// non_utf8_file.py on `py`, its directory under `base` (as the interpreter sees it), ready.
fn non_utf8_workload(py: &Python, base: &str, calls: u32) -> Workload {
    let script = py.script("non_utf8_file.py");
    Workload::path(&script)
        .on(py)
        .args(&[base, &calls.to_string()])
}

/// A directory for the workload's files, as `py` sees it, removed when dropped.
fn workload_base(py: &Python, name: &str) -> (String, Scratch) {
    let root = py.root.unwrap_or("");
    let host = Scratch(TempDir::new_in(
        Path::new(&format!("{root}/tmp")),
        &format!("hostile-{name}"),
    ));
    let inside = host.0.path().to_string_lossy()[root.len()..].to_string();
    (inside, host)
}

fn refusal(base: &str, version: &str, probes: &str) -> String {
    format!(
        "its module fmod was loaded from {base}/caf\\xe9/fmod.py, a name that is not UTF-8, and \
         CPython {version}'s own code behind its {probes} fails on such file names inside the \
         program (UnicodeEncodeError, then SystemError), which usually ends it: nothing attached \
         (--force attaches anyway)"
    )
}

fn assert_one_line_failure(args: &[&str], expect: &str) {
    let out = Pyprobe::new(args).run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(expect), "{args:?}:\n{err}\nlacks\n{expect}");
}

#[test]
fn a_non_utf8_file_name_on_3_11_is_refused_and_the_target_lives() {
    let py = Python::debian();
    let (base, _dir) = workload_base(&py, "refused");
    let w = non_utf8_workload(&py, &base, 1000).ready();
    let pid = w.pid().to_string();
    for (args, probes) in [
        (vec!["count"], "function__return probe"),
        (
            vec!["count", "--latency"],
            "function__entry, function__return and line probes",
        ),
        (
            vec!["flow"],
            "function__entry, function__return and line probes",
        ),
        (vec!["lines"], "line probe"),
    ] {
        let mut args = args.clone();
        args.extend(["--pid", &pid]);
        assert_one_line_failure(&args, &refusal(&base, "3.11.2", probes));
    }
    // Nothing was attached: the program runs its calls and ends well.
    w.release("go", Duration::from_secs(30));
}

#[test]
fn with_force_the_3_11_target_fails_as_the_help_says() {
    let py = Python::debian();
    let (base, _dir) = workload_base(&py, "forced");
    let mut w = non_utf8_workload(&py, &base, 1000).ready();
    let pid = w.pid().to_string();
    let p = Pyprobe::new(&["count", "--force", "--pid", &pid]).start();
    w.send_line("go");
    let out = w.wait_output(Duration::from_secs(30));
    let werr = String::from_utf8_lossy(&out.stderr);
    // The probe's UnicodeEncodeError is left pending, and CPython fails with SystemError at
    // the next check (sometimes while raising that very error).
    assert!(!out.status.success(), "the program survived:\n{werr}");
    assert!(werr.contains("SystemError"), "{werr}");
    assert!(werr.contains("UnicodeEncodeError"), "{werr}");
    let (_, err) = p.finish();
    assert!(
        err.contains(&format!(
            "pyprobe: WARNING: --force: PID {pid}: its module fmod was loaded from {base}/caf\\xe9/fmod.py"
        )),
        "{err}"
    );
}

#[test]
fn a_command_naming_a_non_utf8_script_is_refused_before_it_runs() {
    let s = Scratch::new("command");
    let mut dir = s.0.path().to_path_buf().into_os_string().into_vec();
    dir.extend_from_slice(b"/caf\xe9");
    let dir = PathBuf::from(OsString::from_vec(dir));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("main.py");
    std::fs::write(&script, "open(__file__ + '.ran', 'w').close()\n").unwrap();
    let out = Pyprobe::new(&["count", "--", common::PYTHON])
        .arg(&script)
        .within(Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "its command line names {}/caf\\xe9/main.py, a name that is not UTF-8",
            s.0.path().display()
        )),
        "{err}"
    );
    let mut ran = script.into_os_string();
    ran.push(OsStr::new(".ran"));
    assert!(!Path::new(&ran).exists(), "the script ran");
}

/// `pycount --pid` on the workload: (count of fmod.f, the file it was shown under); the
/// program must end well.
fn count_f(py: &Python, name: &str) -> (u64, String) {
    let (base, _dir) = workload_base(py, name);
    let w = non_utf8_workload(py, &base, 1000);
    let t = Pyprobe::new(&["count", "--json"]).trace(w);
    let (stdout, err) = (t.stdout, t.stderr);
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{err}"));
    let f = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "f")
        .unwrap_or_else(|| panic!("no f: {report}"))
        .clone();
    (
        f["count"].as_u64().unwrap(),
        f["file"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_eval_frame_source_reads_no_file_name_in_cpython_and_counts_exactly() {
    // bullseye's 3.9 has probes, but functions come from the eval-frame uprobe there.
    let py = Python::bullseye();
    let (count, file) = count_f(&py, "eval-frame");
    assert_eq!(count, 1000);
    assert!(file.ends_with("/caf\u{fffd}/fmod.py"), "{file}");
    // Its line probe is another matter.
    let (base, _dir) = workload_base(&py, "lines-3-9");
    let w = non_utf8_workload(&py, &base, 1).ready();
    assert_one_line_failure(
        &["lines", "--pid", &w.pid().to_string()],
        &refusal(&base, "3.9", "line probe"),
    );
}

#[test]
fn cpython_3_15_passes_no_file_name_and_lives() {
    let (count, file) = count_f(&Python::sid("3.15"), "3-15");
    assert_eq!((count, file.as_str()), (1000, "<unknown>"));
}

// ---------------------------------------------------------------------------------------------
// Names that are terminal control sequences: control_names.py renames its functions and their
// file with OSC, CR LF, DEL, a C1 CSI and a ';'. pyprobe's text must carry none of them raw.

/// control_names.py's names as pyprobe's text shows them (src/escape.rs).
const NAME_SHOWN: &str = r"evil\x1b]0;pwned\x07\x0d\x0aFAKE LINE\x7f\u{009b}2J;end";
const FILE_SHOWN: &str = r"/tmp/\x1b[31mred\x1b[0m\x0d\x0afile.py";
/// `work`'s def line in control_names.py, and the line `park` waits at.
const WORK_LINE: u32 = 12;
const PARK_LINE: u32 = 20;

fn control_names(mode: &str) -> Workload {
    Workload::script("control_names.py").args(&[mode])
}

/// No byte a terminal acts on: no C0 control but the newline between lines, no DEL, no C1
/// control (U+0080-U+009F); and the forged line did not become a line of its own.
fn assert_inert(what: &str, out: &str) {
    let bad: Vec<(usize, char)> = out
        .char_indices()
        .filter(|&(_, c)| c != '\n' && c.is_control())
        .collect();
    assert!(bad.is_empty(), "{what}: raw controls at {bad:?} in:\n{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("FAKE LINE")),
        "{what}: a forged line:\n{out}"
    );
}

#[test]
fn stacks_escapes_the_targets_names() {
    let w = control_names("park").ready();
    let out = Pyprobe::new(&["stacks", "--pid", &w.pid().to_string()]).run();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert_inert("stacks", &text);
    assert!(
        text.contains(&format!(
            "\n    {NAME_SHOWN} ({FILE_SHOWN}:{PARK_LINE})\n    outer ("
        )),
        "{text}"
    );
}

/// pyprobe ARGS --pid on control_names.py `mode`, released once tracing began; its stdout.
fn trace_control_names(args: &[&str], mode: &str) -> String {
    let t = Pyprobe::new(args).trace(control_names(mode));
    assert_inert("stderr", &t.stderr);
    t.stdout
}

#[test]
fn count_escapes_the_targets_names() {
    let out = trace_control_names(&["count"], "calls");
    assert_inert("count", &out);
    assert!(
        out.contains(&format!(
            "\n       100  {FILE_SHOWN}:{WORK_LINE} {NAME_SHOWN}\n"
        )),
        "{out}"
    );
}

#[test]
fn flow_escapes_the_targets_names() {
    let out = trace_control_names(&["flow"], "calls");
    assert_inert("flow", &out);
    let call = format!("-> {FILE_SHOWN}:{WORK_LINE} {NAME_SHOWN}");
    let ret = format!("<- {FILE_SHOWN}:{WORK_LINE} {NAME_SHOWN} (");
    let (calls, returns) = (
        out.lines().filter(|l| l.ends_with(&call)).count(),
        out.lines().filter(|l| l.contains(&ret)).count(),
    );
    assert_eq!((calls, returns), (100, 100), "{out}");
}

/// `record --pid` of control_names.py burning in its renamed function, for a second.
fn record_control_names(w: &Guard, extra: &[&str]) -> String {
    let pid = w.pid().to_string();
    let mut args = vec!["record", "--pid", &pid, "-d", "1"];
    args.extend(extra);
    let out = Pyprobe::new(&args).run();
    let text = String::from_utf8(out.stdout).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_inert("record's stderr", &err);
    text
}

#[test]
fn record_escapes_the_targets_names_in_every_text_format() {
    let mut w = control_names("burn").ready();
    w.send_line("go");
    let table = record_control_names(&w, &["--format", "text"]);
    assert_inert("record text", &table);
    let row = table
        .lines()
        .find(|l| l.ends_with(&format!("  {NAME_SHOWN} ({FILE_SHOWN}:{WORK_LINE})")))
        .unwrap_or_else(|| panic!("no row of the renamed function:\n{table}"));
    // It runs all the time: nearly every sample is in it.
    let own: f64 = row
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(own > 80.0, "{row}");

    // Folded stacks: ';' separates frames and a newline ends a stack, so a name holds neither.
    let folded = record_control_names(&w, &["--format", "folded"]);
    assert_inert("folded", &folded);
    let frame = format!("{} ({}:", NAME_SHOWN.replace(';', ":"), FILE_SHOWN);
    let lines: Vec<&str> = folded.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let (stack, n) = l.rsplit_once(' ').unwrap();
        assert!(n.parse::<u64>().is_ok(), "{l}");
        let frames: Vec<&str> = stack.split(';').collect();
        assert!(frames[0].starts_with("<module> ("), "{l}");
        // The only call is the renamed one (a sample may fall in <module> between two).
        assert!(frames.len() == 1 || frames[1].starts_with(&frame), "{l}");
        assert!(frames.len() <= 2, "{l}");
    }
    assert!(lines.iter().any(|l| l.contains(&frame)), "{folded}");

    // The SVG: XML-escaped by inferno, and no control character (which XML 1.0 forbids).
    let svg = record_control_names(&w, &["--format", "svg"]);
    assert_inert("svg", &svg.replace('\n', ""));
    assert!(
        svg.contains("evil\\x1b]0:pwned\\x07\\x0d\\x0aFAKE LINE"),
        "{svg}"
    );
    assert!(svg.contains("&lt;module&gt; ("), "{svg}");
}

#[test]
fn an_exec_into_another_program_mid_session_is_told_and_ends_it() {
    let mut w = Workload::script("exec_away.py").ready();
    let pid = w.pid().to_string();
    let p = Pyprobe::new(&["count", "--json", "--pid", &pid, "--filter", "step"]).start();
    let started = std::time::Instant::now();
    w.send_line("go");
    let (out, err) = p.finish();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "pyprobe went on for {:?} after the exec\n{err}",
        started.elapsed()
    );
    assert!(
        err.contains(&format!(
            "PID {pid} replaced its program (exec) with /usr/bin/sleep"
        )) || err.contains(&format!(
            "PID {pid} replaced its program (exec) with /bin/sleep"
        )),
        "{err}"
    );
    // What was counted before the exec is reported.
    let report = common::last_json(&out);
    let calls: u64 = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "step")
        .map(|f| f["count"].as_u64().unwrap())
        .sum();
    assert_eq!(calls, 500, "{out}");
    assert!(w.alive(), "the exec'd program runs on");
}
