//! Ctrl-C, SIGTERM and SIGHUP as an orderly stop: a flag that every wait checks, so that a
//! session still disarms, detaches and reports.
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the handler that turns Ctrl-C, SIGTERM and SIGHUP into a stop request.
pub fn install_stop_handler() {
    // A second installation (tests calling the library twice) is harmless to ignore.
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst));
}

/// Asks every wait to end, as Ctrl-C does (a key that quits an interactive view, a reader of
/// standard output that went away).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
