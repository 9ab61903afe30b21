//! Fixtures for the formats' unit tests: a writer whose bytes the test keeps, and sample results.
use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;
use std::time::Duration;

use crate::flow::{EventKind, FlowEvent};
use crate::function::Function;
use crate::gc::{GcPause, GcReport, GenerationStats};
use crate::histogram::bucket_of;

#[derive(Clone, Default)]
pub struct Shared(pub Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.borrow().clone()).unwrap()
    }
}

/// main(0..100us) calls fib(10..30us) which calls fib(15..20us), all in thread 7 of pid 7.
pub fn flow_sample() -> Vec<FlowEvent> {
    let f = |name: &str, line| {
        Rc::new(Function {
            id: line as u32,
            file: "/w/app.py".into(),
            line,
            name: name.into(),
            ..Default::default()
        })
    };
    let (main, fib) = (f("main", 1), f("fib", 5));
    let ev = |kind, t: u64, depth, func: &Rc<Function>, dur: Option<u64>| FlowEvent {
        kind,
        time_ns: t * 1000,
        pid: 7,
        tid: 7,
        depth,
        function: func.clone(),
        duration_ns: dur.map(|d| d * 1000),
        unwound: false,
    };
    vec![
        ev(EventKind::Call, 0, 0, &main, None),
        ev(EventKind::Call, 10, 1, &fib, None),
        ev(EventKind::Call, 15, 2, &fib, None),
        ev(EventKind::Return, 20, 2, &fib, Some(5)),
        ev(EventKind::Return, 30, 1, &fib, Some(20)),
        ev(EventKind::Return, 100, 0, &main, Some(100)),
    ]
}

/// Three full collections of 30, 35 and 1.5 ms in two seconds.
pub fn gc_report() -> GcReport {
    let mut generations: Vec<GenerationStats> = (0..3)
        .map(|g| GenerationStats {
            generation: g,
            ..Default::default()
        })
        .collect();
    let g2 = &mut generations[2];
    for p in [30_000_000u64, 35_000_000, 1_500_000] {
        g2.histogram.add(bucket_of(p), 1);
        g2.count += 1;
        g2.total_ns += p;
        g2.max_ns = g2.max_ns.max(p);
    }
    g2.collected = 300_000;
    GcReport {
        generations,
        elapsed: Duration::from_secs(2),
        ..Default::default()
    }
}

/// A 12 ms full collection that ended at 01:01:01.25 UTC.
pub fn gc_pause() -> GcPause {
    GcPause {
        unix_ns: 3_600_000_000_000 + 61_250_000_000,
        pid: 10,
        tid: 11,
        generation: 2,
        duration_ns: 12_000_000,
        collected: 42,
    }
}
