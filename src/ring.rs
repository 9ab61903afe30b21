//! Waiting on a BPF ring buffer: a signal that cuts the wait short (Ctrl-C, SIGTERM) ends the
//! wait, not the session, so the report is still printed.
use std::time::Duration;

use libbpf_rs::RingBuffer;

use crate::error::{Error, Result};

/// Delivers records to the ring's callbacks for up to `timeout`.
pub fn poll(ring: &RingBuffer<'_>, timeout: Duration) -> Result<()> {
    let rc = ring.poll_raw(timeout);
    if rc < 0 && rc != -libc::EINTR {
        return Err(Error::bpf(
            "polling the ring buffer",
            libbpf_rs::Error::from_raw_os_error(-rc),
        ));
    }
    Ok(())
}
