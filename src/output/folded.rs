//! Flame graphs: pyflow's folded stacks weighted by exact self time (or by calls), sampled
//! profiles' stacks weighted by samples (record), and the SVG that the `inferno` crate draws
//! from either.
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use crate::escape::folded_frame;
use crate::flow::{EventKind, FlowEvent, FlowSummary};
use crate::output::{Never, Output, Window};
use crate::sample::{Profile, frame_label};

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

/// Draws folded lines as an SVG flame graph. With no lines inferno still writes an SVG that
/// says so; that is the answer.
fn draw(w: &mut dyn Write, title: &str, count_name: &str, lines: &[String]) -> io::Result<()> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    opts.count_name = count_name.to_string();
    let drawn =
        inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut *w);
    if lines.is_empty() {
        return Ok(());
    }
    drawn.map_err(|e| io::Error::other(e.to_string()))
}

/// A sampled profile's stacks, outermost frame first, with their sample counts; with
/// `per_thread`, under a root frame per thread.
pub fn profile_lines(p: &Profile, per_thread: bool) -> Vec<String> {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for c in &p.counts {
        let mut path = Vec::new();
        if per_thread {
            path.push(format!("thread {} {}", c.tid, c.thread));
        }
        match &c.stack {
            Some(s) => path.extend(s.frames.iter().rev().map(frame_label)),
            None => path.push("<no Python frame>".into()),
        }
        let path: Vec<String> = path.iter().map(|f| folded_frame(f)).collect();
        *totals.entry(path.join(";")).or_insert(0) += c.count;
    }
    totals
        .into_iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect()
}

/// record as folded stacks or an SVG flame graph.
pub struct FoldedProfile {
    w: Box<dyn Write>,
    per_thread: bool,
    svg_title: Option<String>,
}

impl FoldedProfile {
    pub fn new(w: Box<dyn Write>, per_thread: bool, svg_title: Option<String>) -> FoldedProfile {
        FoldedProfile {
            w,
            per_thread,
            svg_title,
        }
    }
}

impl Output<Never, Profile> for FoldedProfile {
    fn report(&mut self, p: &Profile, _: &Window) -> io::Result<()> {
        let lines = profile_lines(p, self.per_thread);
        match &self.svg_title {
            None => {
                for l in &lines {
                    writeln!(self.w, "{l}")?;
                }
            }
            Some(title) => draw(&mut self.w, title, "samples", &lines)?,
        }
        self.w.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::testing::{Shared, flow_sample as sample};
    use crate::sample::tests::profile;

    #[test]
    fn profile_stacks_fold_outermost_first() {
        let lines = profile_lines(&profile(), false);
        assert_eq!(
            lines,
            [
                "<no Python frame> 2",
                "main (/w/app.py:10) 5",
                "main (/w/app.py:10);burn (/w/app.py:5) 30",
                "main (/w/app.py:11);light (/w/app.py:7) 10",
            ]
        );
        let per = profile_lines(&profile(), true);
        assert!(per.contains(&"thread 2 python3;main (/w/app.py:10) 5".to_string()));
    }

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
