//! pyprobe top: a live view of where a process spends its time (src/sample), refreshed every
//! second: functions by own and total samples, sorted by a key the user can change; `q` or
//! Ctrl-C ends it. When standard output is no terminal it prints a table every interval.
mod terminal;
mod text;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::error::Result;
use crate::output::{Never, Output, formats};
pub use crate::sample::text::SortBy;
use crate::sample::{Profile, SampleOptions, SampleTracer};
use crate::session::job::Job;
use crate::session::{Schedule, Session};
use text::{Periodic, Screen};

formats!(pub TopFormat: Text);

#[derive(Debug, Clone)]
pub struct TopOptions {
    pub sample: SampleOptions,
    pub sort: SortBy,
    pub interval: Duration,
    /// Rows shown when standard output is no terminal.
    pub rows: usize,
}

/// The sort key, shared between the key reader and the view.
#[derive(Debug, Clone, Default)]
pub struct SortKey(Arc<AtomicU8>);

impl SortKey {
    pub fn new(s: SortBy) -> SortKey {
        let k = SortKey::default();
        k.set(s);
        k
    }

    pub fn set(&self, s: SortBy) {
        self.0.store(s as u8, Ordering::Relaxed);
    }

    pub fn get(&self) -> SortBy {
        match self.0.load(Ordering::Relaxed) {
            1 => SortBy::Total,
            2 => SortBy::Name,
            _ => SortBy::Own,
        }
    }
}

pub fn run(job: Job, opts: &TopOptions) -> Result<()> {
    // Text only: a format added to `TopFormat` makes this pattern refutable, and it fails to
    // compile until run has the format's formatter.
    let TopFormat::Text = job.dest.format_of::<TopFormat>()?;
    let interactive = job.dest.path.is_none() && std::io::stdout().is_terminal();
    let w = job.dest.open()?;
    let mut session = Session::open(&job.spec, false)?;
    let title = format!(
        "pyprobe top: PID {} (CPython {}), {} Hz{}",
        session.target.pid,
        session.target.version_text(),
        opts.sample.rate_hz,
        if opts.sample.idle {
            ", idle included"
        } else {
            ""
        }
    );
    let sort = SortKey::new(opts.sort);
    let mut tracer = SampleTracer::attach(&session.target, &opts.sample)?;
    let schedule = Schedule {
        interval: Some(opts.interval),
        max_overhead: None,
        ..job.schedule
    };
    let what = format!("Python stacks at {} Hz", opts.sample.rate_hz);
    if interactive {
        // Keys arrive through stdin in raw mode; the terminal is restored however this ends.
        let keys = terminal::Keys::start(sort.clone());
        let mut out: Box<dyn Output<Never, Profile>> = Box::new(Screen::new(w, title, sort));
        let ran = session.run(&mut tracer, out.as_mut(), &what, schedule);
        drop(out);
        drop(keys);
        ran
    } else {
        let mut out = Periodic::new(w, title, opts.sort, opts.rows);
        session.run(&mut tracer, &mut out, &what, schedule)
    }
}
