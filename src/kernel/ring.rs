//! Reading a BPF ring buffer of one record type: records are decoded as they are taken, and a
//! signal that cuts a wait short (Ctrl-C, SIGTERM) ends the wait, not the session.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use libbpf_rs::{MapCore, RingBuffer, RingBufferBuilder};

use crate::abi::record;
use crate::error::{Error, Result};

pub struct Ring<T> {
    buffer: RingBuffer<'static>,
    records: Rc<RefCell<Vec<T>>>,
}

/// How long a wait lasts at most: programs wake the reader only once a batch is waiting (a
/// wakeup per record would cost the traced thread more than the record), so this period is
/// what keeps a trickle of records flowing.
const POLL_PERIOD: Duration = Duration::from_millis(20);

impl<T: plain::Plain + Default + 'static> Ring<T> {
    pub fn open(map: &dyn MapCore) -> Result<Ring<T>> {
        let records = Rc::new(RefCell::new(Vec::new()));
        let sink = records.clone();
        let mut b = RingBufferBuilder::new();
        b.add(map, move |bytes: &[u8]| {
            sink.borrow_mut().push(record(bytes));
            0
        })
        .map_err(|e| Error::bpf("opening the ring buffer", e))?;
        let buffer = b
            .build()
            .map_err(|e| Error::bpf("opening the ring buffer", e))?;
        Ok(Ring { buffer, records })
    }

    /// Waits up to `timeout` for records, then takes every record there is, oldest first.
    pub fn poll(&self, timeout: Duration) -> Result<Vec<T>> {
        let mut n = self.buffer.poll_raw(timeout.min(POLL_PERIOD));
        if n >= 0 || n == -libc::EINTR {
            n = self.buffer.consume_raw();
        }
        if n < 0 && n != -libc::EINTR {
            return Err(Error::bpf(
                "reading the ring buffer",
                libbpf_rs::Error::from_raw_os_error(-n),
            ));
        }
        Ok(self.take())
    }

    /// The records taken so far (by the last poll's end), oldest first.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.records.borrow_mut())
    }
}
