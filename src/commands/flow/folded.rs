//! pyflow as flame graphs: folded stacks weighted by exact self time (or by calls), or the SVG
//! drawn from them (output/folded.rs).
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use super::{EventKind, FlowEvent, FlowSummary};
use crate::escape::folded_frame;
use crate::output::folded::draw;
use crate::output::{Output, Window};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Weight {
    /// Nanoseconds spent in each stack itself (callees excluded)
    #[default]
    Time,
    /// Number of calls of each stack's innermost function
    Calls,
}

struct Open {
    frame: String,
    start_ns: u64,
    /// Time spent in callees, which is not this frame's own.
    callees_ns: u64,
}

pub struct Folded {
    w: Box<dyn Write>,
    weight: Weight,
    /// Draw an SVG with this title instead of writing folded lines.
    svg_title: Option<String>,
    stacks: HashMap<(u32, u32), Vec<Open>>,
    totals: BTreeMap<String, u64>,
    last_ns: u64,
}

impl Folded {
    pub fn new(w: Box<dyn Write>, weight: Weight, svg_title: Option<String>) -> Folded {
        Folded {
            w,
            weight,
            svg_title,
            stacks: HashMap::new(),
            totals: BTreeMap::new(),
            last_ns: 0,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.totals
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(path, n)| format!("{path} {n}"))
            .collect()
    }
}

/// A frame as flame graphs show it (as py-spy does), escaped: ';' separates frames and a newline
/// ends a stack, so the target's names may hold neither.
fn frame(ev: &FlowEvent) -> String {
    let f = &ev.function;
    folded_frame(&format!("{} ({}:{})", f.name, f.file, f.line))
}

impl Output<FlowEvent, FlowSummary> for Folded {
    fn event(&mut self, ev: &FlowEvent) -> io::Result<()> {
        self.last_ns = self.last_ns.max(ev.time_ns);
        let mut stack = self.stacks.remove(&(ev.pid, ev.tid)).unwrap_or_default();
        let d = ev.depth as usize;
        match ev.kind {
            EventKind::Call => {
                stack.truncate(d);
                stack.push(Open {
                    frame: frame(ev),
                    start_ns: ev.time_ns,
                    callees_ns: 0,
                });
            }
            EventKind::Return => {
                let dur = ev.duration_ns.unwrap_or(0);
                let name = frame(ev);
                // With its entry lost the call is still whole (the return has its duration);
                // only its callees' time is then unknown.
                let callees = if stack.len() == d + 1 && stack[d].frame == name {
                    stack.pop().unwrap().callees_ns
                } else {
                    stack.truncate(d);
                    0
                };
                self.add(&mut stack, name, dur, callees);
            }
        }
        self.stacks.insert((ev.pid, ev.tid), stack);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn report(&mut self, _: &FlowSummary, _: &Window) -> io::Result<()> {
        // Calls still running at the end count up to the last event seen.
        let mut keys: Vec<(u32, u32)> = self.stacks.keys().copied().collect();
        keys.sort();
        for k in keys {
            let mut stack = self.stacks.remove(&k).unwrap();
            while let Some(o) = stack.pop() {
                let dur = self.last_ns.saturating_sub(o.start_ns);
                self.add(&mut stack, o.frame, dur, o.callees_ns);
            }
        }
        let lines = self.lines();
        match &self.svg_title {
            None => {
                for l in &lines {
                    writeln!(self.w, "{l}")?;
                }
            }
            Some(title) => {
                let count_name = match self.weight {
                    Weight::Time => "ns",
                    Weight::Calls => "calls",
                };
                if lines.is_empty() {
                    eprintln!("pyflow: no calls were seen: the flame graph is empty");
                }
                draw(&mut self.w, title, count_name, &lines)?;
            }
        }
        self.w.flush()
    }
}

impl Folded {
    /// Adds a finished call (on top of `stack`) with its own time, and charges it to its caller.
    fn add(&mut self, stack: &mut [Open], name: String, dur_ns: u64, callees_ns: u64) {
        let mut path = String::new();
        for o in stack.iter() {
            path.push_str(&o.frame);
            path.push(';');
        }
        path.push_str(&name);
        let w = match self.weight {
            Weight::Time => dur_ns.saturating_sub(callees_ns),
            Weight::Calls => 1,
        };
        *self.totals.entry(path).or_insert(0) += w;
        if let Some(parent) = stack.last_mut() {
            parent.callees_ns += dur_ns;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::flow_sample as sample;
    use super::*;
    use crate::output::testing::Shared;

    fn folded(weight: Weight) -> String {
        let buf = Shared::default();
        let mut f = Folded::new(Box::new(buf.clone()), weight, None);
        for e in sample() {
            f.event(&e).unwrap();
        }
        f.report(&FlowSummary::default(), &Window::default())
            .unwrap();
        buf.text()
    }

    #[test]
    fn self_time_per_stack_adds_up_to_the_outermost_call() {
        let m = "main (/w/app.py:1)";
        let f = "fib (/w/app.py:5)";
        assert_eq!(
            folded(Weight::Time),
            format!("{m} 80000\n{m};{f} 15000\n{m};{f};{f} 5000\n")
        );
        assert_eq!(
            folded(Weight::Calls),
            format!("{m} 1\n{m};{f} 1\n{m};{f};{f} 1\n")
        );
    }

    #[test]
    fn draws_an_svg() {
        let buf = Shared::default();
        let mut f = Folded::new(Box::new(buf.clone()), Weight::Time, Some("t".into()));
        for e in sample() {
            f.event(&e).unwrap();
        }
        f.report(&FlowSummary::default(), &Window::default())
            .unwrap();
        let svg = buf.text();
        assert!(svg.contains("<svg") && svg.contains("fib"), "{svg}");
    }
}
