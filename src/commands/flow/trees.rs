//! Calls sent whole at their return (--min-duration), put back in call order.
use std::collections::BTreeMap;
use std::rc::Rc;

use super::{EventKind, FlowEvent};
use crate::trace::function::Function;

/// A call known whole: sent by the kernel at its return under --min-duration.
#[derive(Debug, Clone)]
pub struct Completed {
    pub pid: u32,
    pub tid: u32,
    pub depth: u32,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub function: Rc<Function>,
}

impl Completed {
    fn end_ns(&self) -> u64 {
        self.start_ns + self.duration_ns
    }

    fn contains(&self, inner: &Completed) -> bool {
        inner.depth > self.depth
            && inner.start_ns >= self.start_ns
            && inner.end_ns() <= self.end_ns()
    }
}

#[derive(Debug)]
struct CallTree {
    call: Completed,
    children: Vec<CallTree>,
}

/// Puts calls that arrive at their returns (callees first) back in call order. A callee lasts
/// no longer than its caller, so every shown call's shown callers are long enough to be shown
/// too: a call at depth 0 completes a tree, printed whole. A call whose caller was lost in the
/// ring buffer is printed on its own once it is clear that no caller will come.
#[derive(Debug, Default)]
pub struct CallTrees {
    pending: BTreeMap<u32, Vec<CallTree>>,
}

impl CallTrees {
    pub fn add(&mut self, call: Completed, out: &mut Vec<FlowEvent>) {
        let pending = self.pending.entry(call.tid).or_default();
        let mut children = Vec::new();
        while pending.last().is_some_and(|t| call.contains(&t.call)) {
            children.push(pending.pop().unwrap());
        }
        children.reverse();
        // Deeper calls left over ended before this one began: their caller was lost.
        let (orphans, kept): (Vec<CallTree>, Vec<CallTree>) = std::mem::take(pending)
            .into_iter()
            .partition(|t| t.call.depth > call.depth);
        *pending = kept;
        for t in orphans {
            t.flatten(out);
        }
        let tree = CallTree { call, children };
        if tree.call.depth == 0 {
            tree.flatten(out);
        } else {
            pending.push(tree);
        }
    }

    /// At the end: calls whose callers were still running (or lost), in order.
    pub fn flush(&mut self, out: &mut Vec<FlowEvent>) {
        for (_, trees) in std::mem::take(&mut self.pending) {
            for t in trees {
                t.flatten(out);
            }
        }
    }
}

impl CallTree {
    fn flatten(self, out: &mut Vec<FlowEvent>) {
        let c = &self.call;
        let event = |kind, time_ns, duration_ns| FlowEvent {
            kind,
            time_ns,
            pid: c.pid,
            tid: c.tid,
            depth: c.depth,
            function: c.function.clone(),
            duration_ns,
            unwound: false,
        };
        out.push(event(EventKind::Call, c.start_ns, None));
        let ret = event(EventKind::Return, c.end_ns(), Some(c.duration_ns));
        for child in self.children {
            child.flatten(out);
        }
        out.push(ret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, depth: u32, start: u64, dur: u64) -> Completed {
        Completed {
            pid: 1,
            tid: 1,
            depth,
            start_ns: start,
            duration_ns: dur,
            function: Rc::new(Function {
                name: name.into(),
                ..Default::default()
            }),
        }
    }

    fn lines(out: &[FlowEvent]) -> Vec<String> {
        out.iter()
            .map(|e| {
                format!(
                    "{}{}{}@{}",
                    "  ".repeat(e.depth as usize),
                    if e.kind == EventKind::Call {
                        "->"
                    } else {
                        "<-"
                    },
                    e.function.name,
                    e.time_ns
                )
            })
            .collect()
    }

    #[test]
    fn calls_sent_at_return_come_out_in_call_order() {
        let mut trees = CallTrees::default();
        let mut out = Vec::new();
        // a(0..100) calls b(10..40) which calls c(20..30), then d(50..90).
        trees.add(call("c", 2, 20, 10), &mut out);
        trees.add(call("b", 1, 10, 30), &mut out);
        trees.add(call("d", 1, 50, 40), &mut out);
        assert!(out.is_empty(), "nothing before the outermost call returns");
        trees.add(call("a", 0, 0, 100), &mut out);
        assert_eq!(
            lines(&out),
            [
                "->a@0",
                "  ->b@10",
                "    ->c@20",
                "    <-c@30",
                "  <-b@40",
                "  ->d@50",
                "  <-d@90",
                "<-a@100"
            ]
        );
    }

    #[test]
    fn a_call_whose_caller_was_lost_still_shows() {
        let mut trees = CallTrees::default();
        let mut out = Vec::new();
        trees.add(call("x", 1, 10, 5), &mut out); // its caller (0..20) was lost
        trees.add(call("y", 0, 30, 10), &mut out);
        assert_eq!(lines(&out), ["  ->x@10", "  <-x@15", "->y@30", "<-y@40"]);
        trees.add(call("z", 3, 50, 1), &mut out);
        trees.flush(&mut out);
        assert_eq!(out.len(), 6);
    }
}
