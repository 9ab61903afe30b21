//! Standard output (or an `--output` FIFO or terminal) written by a thread of its own, so that a
//! reader who stops reading (a full pipe) never stops a session: its deadline and signals still
//! end it, and what could not be written is said on stderr.
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::signals;

/// Bytes waiting for the reader beyond which further output is dropped (and counted).
const BACKLOG_LIMIT: u64 = 64 << 20;
/// Chunks handed to the writer thread once they are this big (or at a flush).
const CHUNK: usize = 64 << 10;
/// How long the end of a session waits for a slow reader before giving up on it.
const GRACE: Duration = Duration::from_secs(2);

/// What the writer thread and the session share.
#[derive(Default)]
struct Shared {
    /// Bytes handed over and not yet written.
    backlog: AtomicU64,
    /// Bytes dropped: over the backlog limit, or after the reader went away.
    dropped: AtomicU64,
    /// The reader closed the pipe (EPIPE) or writing failed otherwise.
    closed: AtomicBool,
    error: Mutex<Option<io::Error>>,
}

/// A `Write` for standard output that never blocks the session.
pub struct DetachedStdout {
    /// What stderr calls it: "standard output", or the FIFO's name.
    name: String,
    buf: Vec<u8>,
    tx: Option<Sender<Vec<u8>>>,
    shared: Arc<Shared>,
    writer: Option<thread::JoinHandle<()>>,
}

impl DetachedStdout {
    pub fn new() -> DetachedStdout {
        Self::with_sink(io::stdout(), signals::request_stop)
    }

    /// The same for an `--output` that is a FIFO with a reader or a terminal.
    pub fn to_file(file: std::fs::File, name: String) -> DetachedStdout {
        let mut out = Self::with_sink(file, signals::request_stop);
        out.name = name;
        out
    }

    /// `on_close` is called once the reader has gone away (the session ends).
    fn with_sink<W: Write + Send + 'static>(sink: W, on_close: fn()) -> DetachedStdout {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let writer = {
            let shared = shared.clone();
            thread::spawn(move || write_all(sink, rx, &shared, on_close))
        };
        DetachedStdout {
            name: "standard output".into(),
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            shared,
            writer: Some(writer),
        }
    }

    fn hand_over(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let len = chunk.len() as u64;
        let shared = &self.shared;
        if shared.closed.load(Ordering::Relaxed)
            || shared.backlog.load(Ordering::Relaxed) + len > BACKLOG_LIMIT
        {
            shared.dropped.fetch_add(len, Ordering::Relaxed);
            return;
        }
        shared.backlog.fetch_add(len, Ordering::Relaxed);
        if let Some(tx) = &self.tx
            && tx.send(chunk).is_err()
        {
            shared.dropped.fetch_add(len, Ordering::Relaxed);
        }
    }

    /// Waits (a little) for the reader to take the rest, then says on stderr what it did not.
    fn finish(&mut self) {
        self.hand_over();
        drop(self.tx.take());
        let grace = if signals::signalled() {
            signals::SIGNALLED_GRACE
        } else {
            GRACE
        };
        let deadline = Instant::now() + grace;
        while let Some(w) = &self.writer {
            if w.is_finished() {
                let _ = self.writer.take().map(|w| w.join());
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        let s = &self.shared;
        let unwritten = s.dropped.load(Ordering::Relaxed) + s.backlog.load(Ordering::Relaxed);
        if unwritten == 0 {
            return;
        }
        let why = match s.error.lock().ok().and_then(|mut e| e.take()) {
            Some(e) if e.kind() == io::ErrorKind::BrokenPipe => "its reader closed it".to_string(),
            Some(e) => e.to_string(),
            None => "its reader did not keep up".to_string(),
        };
        eprintln!(
            "pyprobe: {unwritten} bytes of output not written to {}: {why}",
            self.name
        );
    }
}

impl Default for DetachedStdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for DetachedStdout {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.hand_over();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over();
        Ok(())
    }
}

impl Drop for DetachedStdout {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The writer thread: writes chunks as the reader takes them. A reader that went away ends
/// the session, as it ends other Unix tools, but in order: the rest is counted, not written.
fn write_all<W: Write>(mut sink: W, rx: Receiver<Vec<u8>>, shared: &Shared, on_close: fn()) {
    for chunk in rx {
        let len = chunk.len() as u64;
        let result = if shared.closed.load(Ordering::Relaxed) {
            Ok(())
        } else {
            sink.write_all(&chunk).and_then(|()| sink.flush())
        };
        shared.backlog.fetch_sub(len, Ordering::Relaxed);
        if shared.closed.load(Ordering::Relaxed) {
            shared.dropped.fetch_add(len, Ordering::Relaxed);
        }
        if let Err(e) = result {
            shared.dropped.fetch_add(len, Ordering::Relaxed);
            shared.closed.store(true, Ordering::Relaxed);
            if let Ok(mut slot) = shared.error.lock() {
                *slot = Some(e);
            }
            on_close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that blocks until told to go on, then keeps what it got.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<AtomicBool>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            while !self.open.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(1));
            }
            self.got.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writing_never_waits_for_a_reader_that_does_not_read() {
        let gate = Gate::default();
        let mut out = DetachedStdout::with_sink(gate.clone(), || {});
        let started = Instant::now();
        for _ in 0..1000 {
            out.write_all(&[b'x'; 1024]).unwrap();
            out.flush().unwrap();
        }
        assert!(started.elapsed() < GRACE, "a write waited for the reader");
        assert!(gate.got.lock().unwrap().is_empty());
        gate.open.store(true, Ordering::Relaxed);
        drop(out);
        assert_eq!(gate.got.lock().unwrap().len(), 1000 * 1024);
    }

    #[test]
    fn past_the_backlog_limit_output_is_counted_not_kept() {
        let gate = Gate::default();
        let mut out = DetachedStdout::with_sink(gate.clone(), || {});
        let chunk = vec![b'y'; CHUNK];
        let n = (BACKLOG_LIMIT / CHUNK as u64) + 10;
        for _ in 0..n {
            out.write_all(&chunk).unwrap();
        }
        out.flush().unwrap();
        // The writer holds one chunk in a blocked write; the limit bounds the rest.
        assert!(out.shared.backlog.load(Ordering::Relaxed) <= BACKLOG_LIMIT);
        assert!(out.shared.dropped.load(Ordering::Relaxed) >= 9 * CHUNK as u64);
        gate.open.store(true, Ordering::Relaxed);
    }

    /// A reader that went away.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_remembered_and_drops_the_rest() {
        let mut out = DetachedStdout::with_sink(Closed, || {});
        out.write_all(b"first").unwrap();
        out.flush().unwrap();
        let deadline = Instant::now() + GRACE;
        while !out.shared.closed.load(Ordering::Relaxed) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert!(out.shared.closed.load(Ordering::Relaxed));
        out.write_all(b"second").unwrap();
        out.flush().unwrap();
        assert_eq!(out.shared.dropped.load(Ordering::Relaxed), 11);
    }
}
