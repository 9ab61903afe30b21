//! pyprobe record: a sampling profile of a process (src/sample), written at the end as a flame
//! graph, folded stacks, speedscope JSON, pprof, a table or JSON; a progress line on stderr
//! while it records.
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::escape::escape;
use crate::kernel::Probes;
use crate::output::json::Documents;
use crate::output::{Never, Output, formats};
use crate::sample::{Profile, SampleOptions, SampleTracer};
use crate::sample::{folded, json, pprof, speedscope, text};
use crate::session::job::Job;
use crate::session::{Probed, Schedule, Session, Tracer};

formats!(pub RecordFormat: Svg, Folded, Speedscope, Pprof, Text, Json);

#[derive(Debug, Clone, Default)]
pub struct RecordOptions {
    pub sample: SampleOptions,
    /// Keep threads apart (a root frame per thread, a profile per thread), else merge them.
    pub per_thread: bool,
    /// The table's rows (text format): the first N functions.
    pub top: Option<usize>,
}

/// The sampler, with a progress line on stderr.
struct Recording {
    tracer: SampleTracer,
    started: Instant,
    last_progress: Option<Instant>,
    tty: bool,
}

/// How often the progress line is written: redrawn every second on a terminal, a new line every
/// ten seconds elsewhere (a log).
const PROGRESS_TTY: Duration = Duration::from_secs(1);
const PROGRESS_LOG: Duration = Duration::from_secs(10);

impl Recording {
    fn progress(&mut self, last: bool) {
        let every = if self.tty { PROGRESS_TTY } else { PROGRESS_LOG };
        let due = self.last_progress.unwrap_or(self.started).elapsed() >= every;
        if !(due || last && self.tty) {
            return;
        }
        self.last_progress = Some(Instant::now());
        let line = format!(
            "pyprobe record: {} samples, {} lost, {:.1}s",
            self.tracer.samples(),
            self.tracer.lost(),
            self.started.elapsed().as_secs_f64()
        );
        if self.tty {
            eprint!("\r{line}\x1b[K");
            if last {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}

impl Probed for Recording {
    fn probes(&mut self) -> &mut Probes {
        self.tracer.probes()
    }
}

impl Tracer for Recording {
    type Event = Never;
    type Report = Profile;

    fn poll(&mut self, timeout: Duration, events: &mut Vec<Never>) -> Result<()> {
        self.tracer.poll(timeout, events)?;
        self.progress(false);
        Ok(())
    }

    fn drain(&mut self, events: &mut Vec<Never>) -> Result<()> {
        self.progress(true);
        self.tracer.drain(events)
    }

    fn read(&mut self) -> Result<Profile> {
        self.tracer.read()
    }
}

pub fn run(job: Job, opts: &RecordOptions) -> Result<()> {
    let w = job.dest.open()?;
    let mut session = Session::open(&job.spec, false)?;
    let by_task = if opts.sample.async_tasks {
        ", by asyncio task"
    } else {
        ""
    };
    let title = format!(
        "pyprobe record: PID {} ({}), {} Hz{}{}",
        session.target.pid,
        escape(&session.target.exe),
        opts.sample.rate_hz,
        if opts.sample.idle {
            ", idle included"
        } else {
            ""
        },
        by_task
    );
    let mut out: Box<dyn Output<Never, Profile>> = match job.dest.format_of::<RecordFormat>()? {
        RecordFormat::Svg => Box::new(folded::FoldedProfile::new(w, opts.per_thread, Some(title))),
        RecordFormat::Folded => Box::new(folded::FoldedProfile::new(w, opts.per_thread, None)),
        RecordFormat::Speedscope => {
            Box::new(speedscope::Speedscope::new(w, opts.per_thread, title))
        }
        RecordFormat::Pprof => Box::new(pprof::Pprof::new(w, opts.per_thread)),
        RecordFormat::Json => Box::new(Documents::reports(w, json::report)),
        RecordFormat::Text => Box::new(text::Table::new(w, opts.top)),
    };
    let tracer = SampleTracer::attach(&session.target, &opts.sample)?;
    let mut recording = Recording {
        tracer,
        started: Instant::now(),
        last_progress: None,
        tty: std::io::stderr().is_terminal(),
    };
    let what = format!(
        "Python stacks at {} Hz{}{}",
        opts.sample.rate_hz,
        if opts.sample.idle {
            ", idle threads included"
        } else {
            ""
        },
        by_task
    );
    let schedule = Schedule {
        interval: None,
        max_overhead: None,
        ..job.schedule
    };
    session.run(&mut recording, out.as_mut(), &what, schedule)?;
    let p = recording.tracer.read()?;
    let mut summary = format!(
        "pyprobe record: {} samples in {:.1}s",
        p.total_samples(),
        p.elapsed.as_secs_f64()
    );
    if p.unnamed > 0 {
        summary.push_str(&format!(
            ", {} of stacks that could not be named",
            p.unnamed
        ));
    }
    if let Some((reads, took)) = recording.tracer.task_reads() {
        summary.push_str(&format!(
            "; asyncio tasks read {reads} times in {:.0} ms",
            took.as_secs_f64() * 1e3
        ));
    }
    if let Some(path) = &job.dest.path {
        summary.push_str(&format!("; wrote {}", path.display()));
    }
    eprintln!("{summary}");
    for l in crate::output::text::loss_lines(&p.losses) {
        eprintln!("pyprobe record: WARNING: {l}");
    }
    Ok(())
}
