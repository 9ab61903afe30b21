//! Sampling profiles, shared by `pyprobe record`, `pyprobe top` and the agent's `--profile`, and
//! their encoders (text, json, folded, speedscope, pprof): the Python stack of each
//! target thread on CPU, walked in the kernel at every CPU-clock tick (bpf/sample.bpf.c) and
//! counted per thread and stack; each stack is named once in userspace. With `idle`, threads
//! that are off CPU are sampled from userspace at the same rate (see `idle.rs`).
pub mod folded;
mod idle;
pub mod json;
pub mod pprof;
pub mod speedscope;
mod tasks;
pub mod text;
mod tracer;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

pub use tracer::SampleTracer;

use crate::cpython::walk::Frame;
use crate::session::Report;
use crate::trace::filter::Pattern;
use crate::trace::losses::Losses;

#[derive(Debug, Clone, Default)]
pub struct SampleOptions {
    pub rate_hz: u32,
    pub tid: Option<u32>,
    /// Also sample threads that are off CPU (sleeping, waiting).
    pub idle: bool,
    /// Also count samples of threads that run no Python.
    pub all_threads: bool,
    /// Only stacks whose innermost function matches.
    pub filters: Vec<Pattern>,
    /// Size of the kernel's (thread, stack) table.
    pub max_stacks: u32,
    /// Tables have a row per line running (`--lines`) rather than per function.
    pub lines: bool,
    /// record --async: a running coroutine's samples under its asyncio task and the tasks
    /// awaiting it, in place of the event loop's frames (3.11+).
    pub async_tasks: bool,
}

/// A stack, innermost frame first, named once.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    pub id: u64,
    pub frames: Vec<Frame>,
    /// Deeper than the kernel keeps: the outermost frames are missing.
    pub truncated: bool,
}

/// Samples of one stack in one thread.
#[derive(Debug, Clone, PartialEq)]
pub struct StackCount {
    pub tid: u32,
    /// The thread's name: threading's (`Thread.name`), else the OS's, where known.
    pub thread: Rc<str>,
    /// None: samples of a thread that ran no Python.
    pub stack: Option<Rc<Stack>>,
    pub count: u64,
}

/// Every sample so far (or in a window), the rate they were taken at, and what was lost.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub counts: Vec<StackCount>,
    pub rate_hz: u32,
    pub elapsed: Duration,
    pub losses: Losses,
    /// Samples of stacks that could not be named (their record was lost).
    pub unnamed: u64,
    pub idle: bool,
    /// Its table's rows are lines (the line each frame was running), not functions.
    pub by_line: bool,
}

impl Report for Profile {
    fn since(&self, earlier: &Profile) -> Profile {
        let before: HashMap<(u32, u64), u64> = earlier
            .counts
            .iter()
            .map(|c| ((c.tid, stack_id(c)), c.count))
            .collect();
        let counts = self
            .counts
            .iter()
            .filter_map(|c| {
                let d = c
                    .count
                    .saturating_sub(*before.get(&(c.tid, stack_id(c))).unwrap_or(&0));
                (d > 0).then(|| StackCount {
                    count: d,
                    ..c.clone()
                })
            })
            .collect();
        Profile {
            counts,
            rate_hz: self.rate_hz,
            elapsed: self.elapsed.saturating_sub(earlier.elapsed),
            losses: self.losses.since(&earlier.losses),
            unnamed: self.unnamed.saturating_sub(earlier.unnamed),
            idle: self.idle,
            by_line: self.by_line,
        }
    }
}

fn stack_id(c: &StackCount) -> u64 {
    c.stack.as_ref().map_or(0, |s| s.id)
}

/// A function as profiles' tables show it (or with `--lines`, one line of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionKey {
    pub name: String,
    pub file: String,
    /// The def line; with `--lines`, the line the frame was running.
    pub def_line: i32,
}

impl FunctionKey {
    pub fn of(f: &Frame) -> FunctionKey {
        FunctionKey {
            name: f.name.clone(),
            file: f.file.clone(),
            def_line: f.def_line,
        }
    }

    /// The line a frame was running, as a row of its own.
    pub fn at_line(f: &Frame) -> FunctionKey {
        FunctionKey {
            def_line: f.line,
            ..FunctionKey::of(f)
        }
    }
}

/// A function's samples: where it was the innermost frame (own), and where it was anywhere on
/// the stack (total, counted once per sample however often it recurs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionSamples {
    pub own: u64,
    pub total: u64,
}

impl Profile {
    pub fn total_samples(&self) -> u64 {
        self.counts.iter().map(|c| c.count).sum()
    }

    /// Own and total samples per function (per line with `by_line`: a line's total counts the
    /// samples where it was running in any frame, once per sample).
    pub fn functions(&self) -> HashMap<FunctionKey, FunctionSamples> {
        let key_of = if self.by_line {
            FunctionKey::at_line
        } else {
            FunctionKey::of
        };
        let mut out: HashMap<FunctionKey, FunctionSamples> = HashMap::new();
        for c in &self.counts {
            let Some(stack) = &c.stack else { continue };
            let mut seen = Vec::new();
            for (i, f) in stack.frames.iter().enumerate() {
                let key = key_of(f);
                if seen.contains(&key) {
                    continue;
                }
                let e = out.entry(key.clone()).or_default();
                e.total += c.count;
                if i == 0 {
                    e.own += c.count;
                }
                seen.push(key);
            }
        }
        out
    }

    /// Adds another reading's samples (a window) to these.
    pub fn add(&mut self, other: &Profile) {
        let mut at: HashMap<(u32, u64), usize> = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.tid, stack_id(c)), i))
            .collect();
        for c in &other.counts {
            match at.get(&(c.tid, stack_id(c))) {
                Some(&i) => self.counts[i].count += c.count,
                None => {
                    at.insert((c.tid, stack_id(c)), self.counts.len());
                    self.counts.push(c.clone());
                }
            }
        }
        self.elapsed += other.elapsed;
        self.unnamed += other.unnamed;
        self.rate_hz = other.rate_hz;
        self.idle = other.idle;
        self.by_line = other.by_line;
        self.losses = other.losses.clone();
    }
}

/// A frame as flame graphs and profiles name it: `function (file:line)`; a task frame of
/// --async by its name alone.
pub fn frame_label(f: &Frame) -> String {
    if is_task_frame(f) {
        return f.name.clone();
    }
    format!("{} ({}:{})", f.name, f.file, f.line)
}

/// The frame --async puts in place of the event loop's for an asyncio task: `task NAME`, no
/// file and no line (as the root frames of --per-thread).
pub fn task_frame(name: &str) -> Frame {
    Frame {
        name: format!("task {name}"),
        file: String::new(),
        line: 0,
        def_line: 0,
        locals: None,
    }
}

pub fn is_task_frame(f: &Frame) -> bool {
    f.file.is_empty() && f.line == 0 && f.def_line == 0 && f.name.starts_with("task ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn frame(name: &str, line: i32) -> Frame {
        Frame {
            name: name.into(),
            file: "/w/app.py".into(),
            line,
            def_line: line - 1,
            locals: None,
        }
    }

    /// tid 1: 30 samples in main -> burn, 10 in main -> light; tid 2: 5 in main; 2 native.
    pub fn profile() -> Profile {
        let s = |id, frames: Vec<Frame>| {
            Some(Rc::new(Stack {
                id,
                frames,
                truncated: false,
            }))
        };
        let c = |tid, stack, count| StackCount {
            tid,
            thread: "python3".into(),
            stack,
            count,
        };
        Profile {
            counts: vec![
                c(1, s(1, vec![frame("burn", 5), frame("main", 10)]), 30),
                c(1, s(2, vec![frame("light", 7), frame("main", 11)]), 10),
                c(2, s(3, vec![frame("main", 10)]), 5),
                c(3, None, 2),
            ],
            rate_hz: 100,
            elapsed: Duration::from_secs(1),
            ..Default::default()
        }
    }

    #[test]
    fn own_and_total_samples_per_function() {
        let f = profile().functions();
        let get = |n: &str| {
            f.iter()
                .find(|(k, _)| k.name == n)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("burn"), FunctionSamples { own: 30, total: 30 });
        // main at line 10 and 11 is one function (same def line).
        let mains: Vec<_> = f.keys().filter(|k| k.name == "main").collect();
        assert_eq!(mains.len(), 2, "def lines 9 and 10 differ in this sample");
        assert_eq!(profile().total_samples(), 47);
        // By line: main's lines 10 and 11 apart, each with its own samples.
        let by_line = Profile {
            by_line: true,
            ..profile()
        }
        .functions();
        let main_lines: Vec<(i32, u64)> = {
            let mut v: Vec<_> = by_line
                .iter()
                .filter(|(k, _)| k.name == "main")
                .map(|(k, s)| (k.def_line, s.total))
                .collect();
            v.sort();
            v
        };
        assert_eq!(main_lines, [(10, 35), (11, 10)]);
    }

    #[test]
    fn a_window_has_only_its_own_samples() {
        let before = profile();
        let mut now = profile();
        now.counts[0].count = 35;
        now.elapsed = Duration::from_secs(2);
        let d = now.since(&before);
        assert_eq!(d.counts.len(), 1);
        assert_eq!((d.counts[0].count, d.elapsed), (5, Duration::from_secs(1)));
        let mut sum = before.clone();
        sum.add(&d);
        assert_eq!(sum.total_samples(), 52);
    }
}
