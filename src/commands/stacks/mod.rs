//! pyprobe stacks: what every thread of a process is doing now, read from its memory
//! (src/cpython/pystate) without BPF. Threads that are parked read the same twice and are never
//! stopped; when the stacks move under the reader (or, before 3.11, to learn which kernel thread
//! each thread state is), every thread is held still for the read (cpython/pause.rs) and let go at once.
mod json;
mod text;

use std::collections::HashMap;

use crate::cpython::pause::task_ids;
use crate::cpython::walk::{Frame, symbolize, take, thread_status};
use crate::output::json::Documents;
use crate::output::text::Pages;

use crate::cpython::pystate::Interpreter;
use crate::error::{Error, Result};
use crate::output::{Destination, Never, Output, Window, formats};
use crate::target::Target;
use crate::target::privileges::check_ptrace;
use crate::trace::filter::{Pattern, unqualified};

formats!(pub StacksFormat: Text, Json);

#[derive(Debug, Clone, Default)]
pub struct StacksOptions {
    /// Only this thread (kernel thread id).
    pub tid: Option<u32>,
    /// Also list the threads that run no Python (no thread state).
    pub all_threads: bool,
    /// Each frame's local variables.
    pub locals: bool,
    /// Only threads whose innermost function matches.
    pub filters: Vec<Pattern>,
}

/// One thread and its stack, innermost frame first.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadStack {
    /// The kernel's thread id (None where it could not be told).
    pub tid: Option<i32>,
    /// `threading.get_ident()`; 0 for a thread that runs no Python.
    pub ident: u64,
    /// The OS thread name, where it is not the process's own.
    pub name: Option<String>,
    /// The name `threading` gives it (`Thread.name`), where it is a thread threading knows.
    pub python_name: Option<String>,
    pub main: bool,
    /// Holds the GIL (None where the version does not tell).
    pub gil: Option<bool>,
    /// On CPU or runnable at the moment of the read.
    pub active: bool,
    pub interp_id: i64,
    pub frames: Vec<Frame>,
    /// Outermost frames past the limit (`pystate::MAX_FRAMES`): counted, not shown.
    pub frames_not_shown: u64,
    /// Why the stack could not be read past `frames` (the thread is still shown).
    pub error: Option<String>,
}

/// Every thread of the process at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStacks {
    pub pid: i32,
    pub version: String,
    pub interpreter: String,
    pub exe: String,
    /// The command line, as /proc shows it.
    pub cmdline: String,
    /// The process was held still for the read.
    pub paused: bool,
    pub threads: Vec<ThreadStack>,
    /// Thread states past the limit (`pystate::MAX_THREADS`): counted, not shown.
    pub threads_not_shown: u64,
    /// Why the thread list could not be read to its end (the threads before are shown).
    pub threads_error: Option<String>,
}

impl ProcessStacks {
    /// The read failed as a whole where no thread's stack could be read at all: then every
    /// thread shown is only its error, and that is an error (a dump with at least one stack
    /// read is an answer, its bad threads marked).
    pub fn failure(&self) -> Option<String> {
        let unread = |t: &ThreadStack| t.frames.is_empty() && t.error.is_some();
        if self.threads.is_empty() || !self.threads.iter().all(unread) {
            return None;
        }
        let why = self.threads[0].error.as_deref().unwrap_or_default();
        Some(format!(
            "no stack of PID {} could be read ({} threads; the first: {why})",
            self.pid,
            self.threads.len()
        ))
    }
}

/// Reads every thread's stack of a process.
pub fn read(target: &Target, opts: &StacksOptions) -> Result<ProcessStacks> {
    let mut interp = Interpreter::open(target)?;
    // Whether each thread runs is looked at before the read, which may stop them all.
    let status: HashMap<i32, (Option<String>, bool)> = task_ids(target.pid)
        .into_iter()
        .map(|tid| (tid, thread_status(target.pid, tid)))
        .collect();
    let status_of = |tid: i32| {
        status
            .get(&tid)
            .cloned()
            .unwrap_or_else(|| thread_status(target.pid, tid))
    };
    let (raw, paused) = take(&interp)?;
    let gil = interp.gil_holder();
    // Names are no part of the stacks: where they cannot be read, threads go unnamed.
    let python_names = interp.thread_names().unwrap_or_default();
    let (process_name, _) = thread_status(target.pid, target.pid);
    let mut threads = Vec::new();
    let mut seen_tids = Vec::new();
    for t in &raw.threads {
        let (name, active) = t.tid.map_or((None, false), status_of);
        seen_tids.extend(t.tid);
        threads.push(ThreadStack {
            tid: t.tid,
            ident: t.state.thread_id,
            name: name.filter(|n| Some(n) != process_name.as_ref()),
            python_name: python_names.get(&t.state.thread_id).map(|p| p.name.clone()),
            main: t.tid == Some(target.pid),
            gil: Some(gil == Some(t.state.addr)),
            active,
            interp_id: t.state.interp_id,
            frames: symbolize(&mut interp, &t.walk.frames, opts.locals),
            frames_not_shown: t.walk.not_shown,
            error: t.walk.error.clone(),
        });
    }
    if opts.all_threads {
        for tid in task_ids(target.pid) {
            if !seen_tids.contains(&tid) {
                let (name, active) = status_of(tid);
                threads.push(ThreadStack {
                    tid: Some(tid),
                    ident: 0,
                    name: name.filter(|n| Some(n) != process_name.as_ref()),
                    python_name: None,
                    main: tid == target.pid,
                    gil: None,
                    active,
                    interp_id: -1,
                    frames: Vec::new(),
                    frames_not_shown: 0,
                    error: None,
                });
            }
        }
    }
    threads.retain(|t| {
        opts.tid.is_none_or(|want| t.tid == Some(want as i32))
            && (opts.filters.is_empty()
                || t.frames.first().is_some_and(|f| {
                    opts.filters
                        .iter()
                        .any(|p| p.matches(&f.file, unqualified(&f.name), &f.name))
                }))
    });
    // The main thread first, then by thread id.
    threads.sort_by_key(|t| (!t.main, t.tid.unwrap_or(i32::MAX), t.ident));
    Ok(ProcessStacks {
        pid: target.pid,
        version: target.version_text(),
        interpreter: target.interpreter.clone(),
        exe: target.exe.clone(),
        cmdline: std::fs::read(format!("/proc/{}/cmdline", target.pid))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .trim_end_matches('\0')
                    .replace('\0', " ")
            })
            .unwrap_or_default(),
        paused,
        threads,
        threads_not_shown: raw.not_shown,
        threads_error: raw.error,
    })
}

pub fn run(pid: i32, opts: &StacksOptions, dest: Destination) -> Result<()> {
    // No BPF here: reading memory needs only what ptrace needs (same user, Yama's leave).
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Error::NoSuchProcess(pid));
    }
    check_ptrace(pid)?;
    let w = dest.open()?;
    let target = Target::from_pid(pid)?;
    let stacks = read(&target, opts)?;
    if let Some(want) = opts.tid
        && stacks.threads.is_empty()
        && opts.filters.is_empty()
    {
        return Err(Error::Usage(format!(
            "PID {pid} has no Python thread {want}: see pyprobe stacks --pid {pid} --all-threads"
        )));
    }
    let mut out: Box<dyn Output<Never, ProcessStacks>> = match dest.format_of::<StacksFormat>()? {
        StacksFormat::Json => Box::new(Documents::reports(w, |s, _| json::document(s))),
        StacksFormat::Text => Box::new(Pages::new(w, text::text)),
    };
    out.report(&stacks, &Window::default())
        .and_then(|()| out.flush())
        .map_err(Error::Output)?;
    match stacks.failure() {
        Some(why) => Err(Error::Unreadable(why)),
        None => Ok(()),
    }
}
