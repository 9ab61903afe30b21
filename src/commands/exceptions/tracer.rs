//! pyprobe exceptions' kernel side from userspace: the uprobe on PyTraceBack_Here, the
//! per-version places of the raised exception, and the counts named from the target's memory.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, MapFlags};

use super::{ExceptionEvent, ExceptionKey, ExceptionOptions, ExceptionReport, matches};
use crate::abi::skel::exceptions::{ExceptionsSkel, ExceptionsSkelBuilder};
use crate::abi::types::{ExcEvent, ExcFlight, ExcKey};
use crate::abi::{loss_counters, monotonic_ns, record, same_struct};
use crate::cpython::pystate::Interpreter;
use crate::cpython::raised::site;
use crate::error::Result;
use crate::kernel::{Loaded, Probes, Ring, globals, load};
use crate::session::Tracer;
use crate::session::probes_in_field;
use crate::target::Target;
use crate::trace::losses::{Loss, Losses};

/// A key's names: type, raise function, file, line, end function.
type Names = (String, String, String, i32, String);

pub struct ExceptionTracer {
    skel: Loaded<ExceptionsSkel<'static>>,
    probes: Probes,
    ring: Ring<ExcEvent>,
    interp: Interpreter,
    filters: Vec<String>,
    started_ns: u64,
    /// Names by (type, raise code, raise instruction, end code), read while the target lives:
    /// a command pyprobe started is gone by the last report.
    names: HashMap<(u64, u64, u64, u64), Names>,
    named_at: Instant,
}

probes_in_field!(ExceptionTracer);

impl ExceptionTracer {
    pub fn attach(target: &Target, opts: &ExceptionOptions) -> Result<ExceptionTracer> {
        let (exc, offset) = site(target)?;
        let interp = Interpreter::open(target)?;
        let layout = interp.layout.to_bpf(interp.runtime);
        let skel = load(ExceptionsSkelBuilder::default(), |open| {
            let ro = globals(open.maps.rodata_data.as_deref_mut());
            ro.layout = same_struct(&layout);
            ro.exc = same_struct(&exc);
            ro.stream = opts.stream.into();
            Ok(())
        })?;
        let mut probes = skel.probes()?;
        probes.uprobe(
            &skel.progs.traceback_here,
            target,
            offset,
            "PyTraceBack_Here",
        )?;
        let ring = Ring::open(&skel.maps.exc_events)?;
        Ok(ExceptionTracer {
            skel,
            probes,
            ring,
            interp,
            filters: opts.filters.clone(),
            started_ns: monotonic_ns(),
            names: HashMap::new(),
            named_at: Instant::now(),
        })
    }

    fn name(&mut self, k: &ExcKey) -> ExceptionKey {
        let id = (k.r#type, k.raise_code, k.raise_instr, k.end_code);
        if !self.names.contains_key(&id) {
            let unknown = || "?".to_string();
            let type_name = self
                .interp
                .type_object_name(k.r#type)
                .map(|n| n.to_string())
                .unwrap_or_else(|_| unknown());
            let (function, file, line) = match self.interp.code(k.raise_code) {
                Ok(c) => {
                    let line = self.interp.line(k.raise_code, &c, k.raise_instr);
                    (c.name.clone(), c.file.clone(), line)
                }
                Err(_) => (unknown(), unknown(), 0),
            };
            let end_function = match self.interp.code(k.end_code) {
                Ok(c) => c.name.clone(),
                Err(_) => unknown(),
            };
            self.names
                .insert(id, (type_name, function, file, line, end_function));
        }
        let (type_name, function, file, line, end_function) = self.names[&id].clone();
        ExceptionKey {
            type_name,
            function,
            file,
            line,
            end_function,
            frames: k.frames,
            reached_top: k.reached_top != 0,
        }
    }

    /// Every key the kernel holds (counted, and each thread's last exception), raw.
    fn raw_counts(&self) -> Vec<(ExcKey, u64)> {
        let mut raw: Vec<(ExcKey, u64)> = Vec::new();
        let counts = &self.skel.maps.exc_counts;
        for k in counts.keys() {
            if let Ok(Some(v)) = counts.lookup(&k, MapFlags::ANY) {
                raw.push((record::<ExcKey>(&k), record::<u64>(&v)));
            }
        }
        // Each thread's last exception has not been followed by another: it ended all the same.
        let flights = &self.skel.maps.flights;
        for k in flights.keys() {
            if let Ok(Some(v)) = flights.lookup(&k, MapFlags::ANY) {
                let f = record::<ExcFlight>(&v);
                if f.key.frames > 0 {
                    raw.push((f.key, 1));
                }
            }
        }
        raw
    }
}

impl Tracer for ExceptionTracer {
    type Event = ExceptionEvent;
    type Report = ExceptionReport;

    fn poll(&mut self, timeout: Duration, events: &mut Vec<ExceptionEvent>) -> Result<()> {
        for e in self.ring.poll(timeout)? {
            let key = self.name(&e.key);
            if matches(&self.filters, &key) {
                events.push(ExceptionEvent {
                    key,
                    tid: e.tid,
                    offset_ns: e.start_ns.saturating_sub(self.started_ns),
                });
            }
        }
        if self.named_at.elapsed() >= Duration::from_millis(200) {
            self.named_at = Instant::now();
            for (k, _) in self.raw_counts() {
                self.name(&k);
            }
        }
        Ok(())
    }

    fn read(&mut self) -> Result<ExceptionReport> {
        let raw = self.raw_counts();
        let mut named: BTreeMap<ExceptionKey, u64> = BTreeMap::new();
        for (k, n) in raw {
            let key = self.name(&k);
            if matches(&self.filters, &key) {
                *named.entry(key).or_default() += n;
            }
        }
        let bss = globals(self.skel.maps.bss_data.as_deref());
        let losses = Losses::read(
            &loss_counters(&bss.losses),
            &[
                (Loss::EventsLost, None),
                (Loss::ReadErrors, None),
                (Loss::ThreadsFull, None),
                (Loss::FunctionsFull, None),
            ],
        );
        // SAFETY: a u64 the kernel updates under us, read afresh.
        let frames_passed = unsafe { std::ptr::read_volatile(&bss.calls) };
        Ok(ExceptionReport {
            counts: named,
            frames_passed,
            losses,
        })
    }
}
