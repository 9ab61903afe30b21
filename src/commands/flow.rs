//! `pyflow` / `pyprobe flow`: every call and return of a live Python process, as it happens.
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::bpf::types::FlowRecord;
use crate::cli::FlowArgs;
use crate::error::{Error, Result};
use crate::flow::{CallTrees, FlowEvent, FlowSummary, FlowTracer};
use crate::output::flow::{FlowFormat, FlowOutput, new_output};
use crate::process::{STOP, Schedule, run_session};

pub fn run(args: &FlowArgs) -> Result<()> {
    let opts = args.options()?;
    let format = args.format();
    let out_path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("<stdout>"));
    // Refuse an unwritable --output before touching the target.
    let writer: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).map_err(|e| Error::io(p, e))?,
        )),
        None => Box::new(BufWriter::new(io::stdout())),
    };
    let (mut tracee, target) = super::open_target(&args.target)?;
    let mut storage = MaybeUninit::uninit();
    let tracer = FlowTracer::attach(&target, &opts, &mut storage)?;
    let records = Rc::new(RefCell::new(Vec::new()));
    let ring = tracer.ring_buffer(records.clone())?;
    let title = format!("pyflow: PID {} ({})", target.pid, target.exe);
    let mut pump = Pump {
        summary: FlowSummary {
            calls_mode: tracer.calls_mode,
            ..Default::default()
        },
        tracer,
        records,
        trees: CallTrees::default(),
        out: new_output(format, args.weight, writer, title),
        out_path,
        events: Vec::new(),
        lost_said: 0,
        lost_said_at: None,
    };
    super::banner("calls and returns", &target);
    tracee.release();

    let schedule = Schedule {
        duration: args.duration,
        interval: None,
    };
    let session = run_session(
        &mut tracee,
        schedule,
        |d| {
            poll(&ring, d)?;
            pump.drain()?;
            pump.say_losses();
            Ok(())
        },
        || Ok(()),
    );
    let closed_output = matches!(&session, Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe);
    if !closed_output {
        session?;
    }
    // No new events once the probes are gone; then take what is still in the ring.
    pump.tracer.detach();
    tracee.finish();
    if closed_output {
        return Ok(());
    }
    ring.consume_raw();
    pump.drain()?;
    pump.finish(format)
}

/// Waits for records, then takes what is there: the kernel wakes pyflow only once a quarter
/// of the ring is full, so the wait's timeout is what keeps a slow trickle flowing. A signal
/// (Ctrl-C) interrupting the wait is not an error.
fn poll(ring: &libbpf_rs::RingBuffer<'_>, d: Duration) -> Result<()> {
    let mut n = ring.poll_raw(d.min(POLL_PERIOD));
    if n >= 0 || n == -libc::EINTR {
        n = ring.consume_raw();
    }
    if n < 0 && n != -libc::EINTR {
        return Err(Error::bpf(
            "reading the ring buffer",
            libbpf_rs::Error::from_raw_os_error(-n),
        ));
    }
    Ok(())
}

/// How often pyflow drains the ring buffer when the kernel does not wake it.
const POLL_PERIOD: Duration = Duration::from_millis(20);

/// Moves records from the ring buffer to the output, and tells about losses as they happen.
struct Pump<'obj> {
    tracer: FlowTracer<'obj>,
    records: Rc<RefCell<Vec<FlowRecord>>>,
    trees: CallTrees,
    out: Box<dyn FlowOutput>,
    out_path: PathBuf,
    events: Vec<FlowEvent>,
    summary: FlowSummary,
    lost_said: u64,
    lost_said_at: Option<Instant>,
}

impl Pump<'_> {
    fn drain(&mut self) -> Result<()> {
        let records = std::mem::take(&mut *self.records.borrow_mut());
        self.summary.delivered += records.len() as u64;
        self.tracer
            .events(&records, &mut self.trees, &mut self.events);
        self.write()
    }

    fn write(&mut self) -> Result<()> {
        let path = self.out_path.clone();
        let io_err = |e| Error::io(Path::new(&path), e);
        for ev in self.events.drain(..) {
            self.out.event(&ev).map_err(io_err)?;
            self.summary.events += 1;
        }
        self.out.flush().map_err(io_err)
    }

    /// At most once a second, so that a flood of losses does not flood the terminal.
    fn say_losses(&mut self) {
        if STOP.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let lost = self.tracer.losses().events_lost;
        let due = self
            .lost_said_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if lost > self.lost_said && due {
            eprintln!(
                "pyflow: {lost} {} lost so far: ring buffer full (raise --buffer-size)",
                if self.summary.calls_mode {
                    "calls"
                } else {
                    "events"
                }
            );
            self.lost_said = lost;
            self.lost_said_at = Some(Instant::now());
        }
    }

    fn finish(mut self, format: FlowFormat) -> Result<()> {
        self.trees.flush(&mut self.events);
        self.write()?;
        self.summary.losses = self.tracer.losses();
        let path = self.out_path.clone();
        self.out
            .finish(&self.summary)
            .map_err(|e| Error::io(&path, e))?;
        let s = &self.summary;
        eprintln!(
            "pyflow: {} events shown; {} {} lost",
            s.events,
            s.losses.events_lost,
            if s.calls_mode { "calls" } else { "events" }
        );
        // The text output carries its own WARNING lines; the other formats hold them as data.
        if format != FlowFormat::Text {
            for l in s.loss_lines() {
                eprintln!("pyflow: WARNING: {l}");
            }
        }
        Ok(())
    }
}
