//! Ctrl-C, SIGTERM and SIGHUP as an orderly stop: a flag that every wait checks, so that a
//! session still disarms, detaches and reports. And a bound on that order: whatever pyprobe is
//! stuck in (a blocking call nobody foresaw), a second signal, or `FORCE_AFTER` past the first,
//! ends the process; the kernel then detaches its probes as it closes their descriptors.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// How long an orderly stop may take once signalled: a signal ends pyprobe within a second,
/// whatever it is doing (a session's end needs tens of milliseconds; a slow reader of standard
/// output is given `SIGNALLED_GRACE` of it).
pub const FORCE_AFTER: Duration = Duration::from_millis(800);
/// How long the end of a signalled session waits for a slow reader of its output.
pub const SIGNALLED_GRACE: Duration = Duration::from_millis(400);

/// Installs the handler that turns Ctrl-C, SIGTERM and SIGHUP into a stop request.
pub fn install_stop_handler() {
    // A second installation (tests calling the library twice) is harmless to ignore.
    let _ = ctrlc::set_handler(|| {
        // ctrlc runs this on a thread of its own, never inside the signal handler.
        if SIGNALLED.swap(true, Ordering::SeqCst) {
            force_exit("a second signal: ending at once, without the last report");
        }
        STOP.store(true, Ordering::SeqCst);
        let _ = std::thread::Builder::new()
            .name("pyprobe-stop".into())
            .spawn(|| {
                std::thread::sleep(FORCE_AFTER);
                force_exit(&format!(
                    "still stopping {} ms after the signal: ending at once, without the last report",
                    FORCE_AFTER.as_millis()
                ));
            });
    });
}

/// Says why on stderr (from a thread of its own: stderr may be a pipe nobody reads) and ends
/// the process without running anything else of it.
fn force_exit(why: &str) -> ! {
    let line = format!("pyprobe: error: {why}\n");
    let _ = std::thread::Builder::new().spawn(move || {
        // SAFETY: write(2) of a buffer we own to standard error.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    });
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: _exit ends the process at once; nothing of it runs after.
    unsafe { libc::_exit(1) }
}

/// Asks every wait to end, as Ctrl-C does (a key that quits an interactive view, a reader of
/// standard output that went away).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// A signal (not a key or a reader going away) asked pyprobe to stop.
pub fn signalled() -> bool {
    SIGNALLED.load(Ordering::SeqCst)
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
