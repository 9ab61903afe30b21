//! A sample of pyflow's events, for its formats' unit tests.
use std::rc::Rc;

use super::{EventKind, FlowEvent};
use crate::trace::function::Function;

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
