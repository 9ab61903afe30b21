//! pyprobe audit's kernel side from userspace: loads bpf/audit.bpf.c for one target with its
//! event globs and the argument decoders, and takes the streamed events.
use std::time::Duration;

use super::{AuditEvent, AuditSummary, DECODERS};
use crate::abi::skel::audit::{AuditSkel, AuditSkelBuilder};
use crate::abi::types::{AuditDecoder, AuditEvent as RawEvent};
use crate::abi::{loss_counters, monotonic_ns, same_struct, to_c_chars};
use crate::commands::tools::{self, Needs};
use crate::error::Result;
use crate::kernel::{Loaded, Probes, Ring, globals, load};
use crate::session::Tracer;
use crate::session::probes_in_field;
use crate::target::Target;
use crate::trace::glob;
use crate::trace::glob::Glob;
use crate::trace::losses::{Loss, Losses};
use crate::versions::object_layout;

/// Loaded and attached audit tracing for one target.
pub struct AuditTracer {
    skel: Loaded<AuditSkel<'static>>,
    probes: Probes,
    ring: Ring<RawEvent>,
    /// When tracing began (CLOCK_MONOTONIC), which event times count from.
    start_ns: u64,
    events: u64,
    decodes: bool,
}

probes_in_field!(AuditTracer);

impl AuditTracer {
    pub fn attach(target: &Target, events: &[Glob]) -> Result<AuditTracer> {
        tools::require(target, Needs::Probes(&["audit"]))?;
        let layout = target.version.and_then(object_layout);
        let skel = load(AuditSkelBuilder::default(), |open| {
            let ro = globals(open.maps.rodata_data.as_deref_mut());
            let (globs, nr_globs) = glob::table(events);
            ro.globs = same_struct(&globs);
            ro.nr_globs = nr_globs;
            if let Some(l) = layout {
                ro.objects = same_struct(&l);
                for (slot, d) in ro.decoders.iter_mut().zip(DECODERS) {
                    *slot = same_struct(&AuditDecoder {
                        name: to_c_chars(d.event),
                        len: d.event.len() as u32,
                        nargs: d.args.len() as u32,
                        seq_arg: d.seq_arg.map_or(-1, |i| i as i32),
                        ..Default::default()
                    });
                }
                ro.nr_decoders = DECODERS.len() as u32;
            }
            Ok(())
        })?;
        let mut probes = skel.probes()?;
        probes.usdt(&skel.progs.on_audit, target, "audit")?;
        let ring = Ring::open(&skel.maps.audit_events)?;
        Ok(AuditTracer {
            skel,
            probes,
            ring,
            start_ns: monotonic_ns(),
            events: 0,
            decodes: layout.is_some(),
        })
    }
}

impl Tracer for AuditTracer {
    type Event = AuditEvent;
    type Report = AuditSummary;

    fn poll(&mut self, timeout: Duration, events: &mut Vec<AuditEvent>) -> Result<()> {
        let taken = self.ring.poll(timeout)?;
        self.events += taken.len() as u64;
        events.extend(taken.iter().map(|r| AuditEvent::from_raw(r, self.start_ns)));
        Ok(())
    }

    fn read(&mut self) -> Result<AuditSummary> {
        let bss = globals(self.skel.maps.bss_data.as_deref());
        Ok(AuditSummary {
            events: self.events,
            losses: Losses::read(
                &loss_counters(&bss.losses),
                &[(Loss::EventsLost, None), (Loss::ReadErrors, None)],
            ),
            decodes: self.decodes,
        })
    }
}
