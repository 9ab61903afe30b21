//! `pyprobe agent`: every CPython process on the host, found as it starts and dropped as it
//! exits, exposed as Prometheus metrics. GC and imports come from probes attached once per
//! interpreter file for all its processes (bpf/agent.bpf.c); functions selected with --filter
//! from probes of each process's own (pycount's kernel side), under a per-process overhead
//! budget.
mod buckets;
mod discovery;
mod interpreter;
mod metrics;
mod process;
mod profiles;
mod server;
mod webconfig;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{ProcessLabels, Snapshot};
use webconfig::WebConfig;

use crate::commands::count::CountOptions;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::signals::stop_requested;
use crate::target::Target;
use crate::target::privileges::check_privileges;
use crate::trace::filter::Pattern;
use crate::trace::glob::Glob;
use crate::trace::losses::Loss;
use discovery::FileId;
use interpreter::{Interpreter, ProcessReading};
use metrics::{FunctionSeries, Health, ProcessMetrics, Unsupported};
use process::{Functions, Process};
use server::{Exposition, Server};

pub use profiles::MAX_HZ as MAX_PROFILE_HZ;

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub listen: SocketAddr,
    pub web_config: Option<PathBuf>,
    /// Only these processes (none: every Python process).
    pub pids: Vec<i32>,
    pub exclude_comm: Vec<Glob>,
    /// Functions to count and time; none: no function probes at all.
    pub filters: Vec<Pattern>,
    /// Time the calls too, on the shared probe (on 3.11 that takes tracing mode: about twice
    /// the cost per call); else they are counted on watchpoints where those serve.
    pub latency: bool,
    /// Function series exported at most, over every process.
    pub max_series: usize,
    /// Per-process budget for the function probes, in percent of slowdown.
    pub max_overhead: f64,
    /// How often processes are looked for and the kernel's counts read.
    pub interval: Duration,
    /// Size of each process's kernel function table.
    pub max_functions: u32,
    /// Sample every process's CPU stacks at this rate for /debug/pprof/profile (None: off).
    pub profile_hz: Option<u32>,
}

/// Runs the agent until Ctrl-C or SIGTERM; then detaches every probe.
pub fn run(opts: &AgentOptions) -> Result<()> {
    check_privileges()?;
    let web = match &opts.web_config {
        Some(path) => WebConfig::read(path)?,
        None => WebConfig::default(),
    };
    if !opts.listen.ip().is_loopback() && web.tls.is_none() && web.users.is_empty() {
        eprintln!(
            "pyprobe: agent: serving {} beyond loopback without TLS or basic auth \
             (--web-config-file sets them)",
            opts.listen
        );
    }
    let exposition = Arc::new(Exposition::default());
    let store = opts.profile_hz.map(|hz| Arc::new(profiles::Store::new(hz)));
    let server = Server::start(opts.listen, web, exposition.clone(), store.clone())?;
    let scheme = if server.tls { "https" } else { "http" };
    eprintln!(
        "pyprobe agent: serving {scheme}://{}/metrics{}; Ctrl-C or SIGTERM to end.",
        server.addr,
        match opts.profile_hz {
            Some(hz) => format!(
                " and CPU profiles at {hz} Hz at {scheme}://{}/debug/pprof/profile",
                server.addr
            ),
            None => String::new(),
        }
    );
    let mut agent = Agent::new(opts.clone(), store);
    while !stop_requested() {
        let started = Instant::now();
        agent.scan();
        exposition.publish(metrics::encode(agent.collect()));
        while !stop_requested() && started.elapsed() < opts.interval {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let (interpreters, processes) = (agent.interpreters.len(), agent.processes.len());
    agent.detach();
    drop(server);
    eprintln!(
        "pyprobe agent: stopped: probes detached from {interpreters} interpreter(s) and {processes} process(es)"
    );
    Ok(())
}

struct Agent {
    opts: AgentOptions,
    me: i32,
    interpreters: HashMap<FileId, Interpreter>,
    /// Interpreter files whose probes cannot be attached, and why.
    refused: HashMap<FileId, String>,
    processes: HashMap<i32, Process>,
    /// Processes looked at and left alone (not Python, excluded), by start time.
    ignored: HashMap<i32, u64>,
    series: SeriesLimit,
    /// Where --profile's windows go, and when the last one ended.
    profiles: Option<Arc<profiles::Store>>,
    last_window: Instant,
}

impl Agent {
    fn new(opts: AgentOptions, profiles: Option<Arc<profiles::Store>>) -> Agent {
        Agent {
            profiles,
            last_window: Instant::now(),
            me: std::process::id() as i32,
            interpreters: HashMap::new(),
            refused: HashMap::new(),
            processes: HashMap::new(),
            ignored: HashMap::new(),
            series: SeriesLimit {
                admitted: HashSet::new(),
                max: opts.max_series,
            },
            opts,
        }
    }

    /// Drops the processes that exited and takes on the new ones.
    fn scan(&mut self) {
        let alive: HashMap<i32, u64> = discovery::processes()
            .into_iter()
            .map(|s| (s.pid, s.start_time))
            .collect();
        let gone: Vec<i32> = self
            .processes
            .iter()
            .filter(|(pid, p)| alive.get(pid) != Some(&p.start_time))
            .map(|(&pid, _)| pid)
            .collect();
        for pid in gone {
            self.drop_process(pid);
        }
        self.ignored
            .retain(|pid, start| alive.get(pid) == Some(start));
        let mut new: Vec<(i32, u64)> = alive
            .into_iter()
            .filter(|(pid, _)| !self.processes.contains_key(pid) && !self.ignored.contains_key(pid))
            .collect();
        new.sort();
        for (pid, start_time) in new {
            if !self.consider(pid, start_time) {
                self.ignored.insert(pid, start_time);
            }
        }
    }

    /// Takes on a new process if it is a Python process to trace; false to leave it alone.
    fn consider(&mut self, pid: i32, start_time: u64) -> bool {
        if pid == self.me || (!self.opts.pids.is_empty() && !self.opts.pids.contains(&pid)) {
            return false;
        }
        let comm = discovery::comm(pid);
        if self.opts.exclude_comm.iter().any(|g| g.matches(&comm)) {
            return false;
        }
        if !discovery::may_be_python(pid) {
            return false;
        }
        let mut unsupported = Vec::new();
        let target = match Target::from_pid(pid) {
            Ok(t) => Some(t),
            Err(Error::NotPython { .. } | Error::NoSuchProcess(_)) => return false,
            Err(e) => {
                unsupported.push(("process", e.one_line()));
                None
            }
        };
        let labels = ProcessLabels {
            pid,
            comm: comm.clone(),
            python_version: target
                .as_ref()
                .map(|t| t.version_text())
                .unwrap_or_else(|| "unknown".into()),
            container: discovery::container(pid),
        };
        let (file, functions, profile) = match &target {
            Some(t) => (
                self.interpreter_for(t, &mut unsupported),
                self.functions_for(t, &mut unsupported),
                self.profiler_for(t, &labels, &mut unsupported),
            ),
            None => (None, None, None),
        };
        eprintln!(
            "pyprobe: agent: PID {pid} ({}, CPython {}{}): {}",
            escape(&comm),
            labels.python_version,
            if labels.container.is_empty() {
                String::new()
            } else {
                format!(", in {}", escape(&labels.container))
            },
            describe(
                file.is_some(),
                functions.is_some(),
                profile.is_some(),
                &unsupported
            )
        );
        self.processes.insert(
            pid,
            Process {
                labels,
                start_time,
                file,
                functions,
                profile,
                unsupported,
            },
        );
        true
    }

    /// The interpreter file of `target`, attached once for all its processes.
    fn interpreter_for(
        &mut self,
        target: &Target,
        unsupported: &mut Vec<(&'static str, String)>,
    ) -> Option<FileId> {
        // The file pyprobe opened and checked inside the target's root (target::files).
        let id = FileId {
            dev: target.file.dev,
            ino: target.file.ino,
        };
        if !self.interpreters.contains_key(&id) && !self.refused.contains_key(&id) {
            match target
                .attach_path()
                .and_then(|path| Interpreter::attach(target, &path))
            {
                Ok(i) => {
                    self.interpreters.insert(id, i);
                }
                // A process that exited meanwhile took its /proc paths with it: the next
                // process of this file tries again.
                Err(e) if discovery::start_time(target.pid).is_none() => {
                    unsupported.push(("gc", e.one_line()));
                    return None;
                }
                Err(e) => {
                    self.refused.insert(id, e.one_line());
                }
            }
        }
        if let Some(why) = self.refused.get(&id) {
            unsupported.push(("gc", why.clone()));
            return None;
        }
        if self.interpreters.get(&id).is_some_and(|i| !i.imports) {
            unsupported.push(("imports", "no import probes (CPython 3.7+)".into()));
        }
        Some(id)
    }

    fn functions_for(
        &self,
        target: &Target,
        unsupported: &mut Vec<(&'static str, String)>,
    ) -> Option<Functions> {
        if self.opts.filters.is_empty() {
            return None;
        }
        let opts = CountOptions {
            filters: self.opts.filters.clone(),
            latency: self.opts.latency,
            tid: None,
            max_functions: self.opts.max_functions,
            activate_trampoline: false,
            // A process running code from a file name CPython's probes fail on is listed as
            // unsupported with the reason, never put at risk by an exporter.
            force: false,
            subprocesses: false,
            lean_maps: true,
            source: crate::source::SourceChoice::Auto,
        };
        match Functions::attach(target, &opts) {
            Ok(f) => Some(f),
            Err(e) => {
                unsupported.push(("functions", e.one_line()));
                None
            }
        }
    }

    /// With --profile, a CPU-clock sampler of the process's stacks, armed at once.
    fn profiler_for(
        &self,
        target: &Target,
        labels: &ProcessLabels,
        unsupported: &mut Vec<(&'static str, String)>,
    ) -> Option<profiles::Profiler> {
        let hz = self.opts.profile_hz?;
        match profiles::Profiler::attach(target, labels, hz) {
            Ok(p) => Some(p),
            Err(e) => {
                unsupported.push(("profile", e.one_line()));
                None
            }
        }
    }

    fn drop_process(&mut self, pid: i32) {
        let Some(p) = self.processes.remove(&pid) else {
            return;
        };
        if let Some(i) = p.file.and_then(|f| self.interpreters.get(&f)) {
            i.forget(pid as u32);
        }
        self.series.admitted.retain(|(owner, _)| *owner != pid);
        eprintln!(
            "pyprobe: agent: PID {pid} ({}) exited",
            escape(&p.labels.comm)
        );
        // Its function probes go with it (dropping the tracer detaches them).
    }

    /// Reads every count and builds the snapshot the next scrapes get.
    fn collect(&mut self) -> Snapshot {
        let mut tally = Tally::default();
        let readings = self.read_interpreters(&mut tally);
        let mut pids: Vec<i32> = self.processes.keys().copied().collect();
        pids.sort();
        let mut processes = Vec::new();
        let mut unsupported = Vec::new();
        let mut samples = Vec::new();
        for pid in pids {
            let p = self.processes.get_mut(&pid).expect("listed above");
            if let Some(profile) = &mut p.profile {
                match profile.window() {
                    Ok(s) => samples.extend(s),
                    Err(e) => eprintln!("pyprobe: agent: PID {pid}: {}", e.one_line()),
                }
                *tally.lost.entry("profile_samples_full").or_default() += profile.lost();
            }
            for (what, reason) in &p.unsupported {
                unsupported.push(Unsupported {
                    labels: p.labels.clone(),
                    what,
                    reason: reason.clone(),
                });
            }
            let interp = p.file.and_then(|f| self.interpreters.get(&f));
            let reading = p
                .file
                .and_then(|f| readings.get(&f))
                .and_then(|r| r.get(&(pid as u32)))
                .cloned()
                .unwrap_or_default();
            let mut m = ProcessMetrics {
                labels: p.labels.clone(),
                gc: interp.map(|_| reading.gc.clone()),
                imports: interp
                    .filter(|i| i.imports)
                    .map(|_| reading.imports.clone()),
                functions: Vec::new(),
                dropped_calls: 0,
                function_probes: None,
                overhead: None,
            };
            if let Some(f) = &mut p.functions {
                let budget = self.opts.max_overhead;
                match f.update(budget) {
                    Ok(Some(cost)) => eprintln!(
                        "pyprobe: agent: PID {pid} ({}): function probes stopped: they cost {} \
                         (over --max-overhead {budget}%); its GC and import metrics go on",
                        escape(&p.labels.comm),
                        cost.summary()
                    ),
                    Ok(None) => {}
                    Err(e) => eprintln!("pyprobe: agent: PID {pid}: {}", e.one_line()),
                }
                for s in &f.last.functions {
                    if !self.series.admit(pid, s.function.id) {
                        m.dropped_calls += s.count;
                        tally.dropped_series += 1;
                        continue;
                    }
                    m.functions.push(FunctionSeries {
                        name: s.function.name.clone(),
                        file: s.function.file.clone(),
                        line: s.function.line,
                        calls: s.count,
                        latency: self
                            .opts
                            .latency
                            .then(|| buckets::Buckets::from_log_linear(&s.histogram, s.total_ns)),
                    });
                }
                for l in &f.last.losses.0 {
                    *tally.lost.entry(loss_kind(l.loss)).or_default() += l.count;
                }
                m.function_probes = Some(f.state.clone());
                m.overhead = f.cost.map(|c| c.slowdown - 1.0);
            }
            processes.push(m);
        }
        if let Some(store) = &self.profiles {
            store.push(self.last_window.elapsed(), samples);
            self.last_window = Instant::now();
        }
        Snapshot {
            processes,
            unsupported,
            health: tally.health(self.interpreters.len(), self.processes.len()),
        }
    }

    /// What every interpreter file's processes recorded; forgets the processes not traced.
    fn read_interpreters(
        &self,
        tally: &mut Tally,
    ) -> HashMap<FileId, HashMap<u32, ProcessReading>> {
        let mut readings = HashMap::new();
        for (id, interp) in &self.interpreters {
            let (r, fill) = interp.read().unwrap_or_else(|e| {
                eprintln!("pyprobe: agent: {}", e.one_line());
                Default::default()
            });
            // Processes the kernel saw that are not traced (excluded, or gone already).
            for &tgid in r.keys() {
                let pid = tgid as i32;
                if !self.processes.contains_key(&pid)
                    && (self.ignored.contains_key(&pid) || discovery::start_time(pid).is_none())
                {
                    interp.forget(tgid);
                }
            }
            for (map, used, capacity) in fill {
                let e = tally.maps.entry(map).or_default();
                e.0 += used;
                e.1 += capacity;
            }
            for (kind, n) in interp.losses() {
                *tally.lost.entry(kind).or_default() += n;
            }
            readings.insert(*id, r);
        }
        readings
    }

    /// Detaches every process's and interpreter's probes, each from a thread of its own: a
    /// uprobe's detach waits for a kernel grace period (tens of milliseconds, more on a loaded
    /// machine), and one after another a dozen of them outlasted the second SIGTERM is allowed.
    /// (Within one of them the links go one by one: libbpf's USDT bookkeeping is per object and
    /// not to be shared between threads.)
    fn detach(&mut self) {
        let processes = self.processes.drain().map(|(_, p)| ToDrop(p));
        let interpreters = self.interpreters.drain().map(|(_, i)| ToDrop(i));
        std::thread::scope(|s| {
            for p in processes {
                s.spawn(move || drop(p));
            }
            for i in interpreters {
                s.spawn(move || {
                    // The whole wrapper moves in (a closure would take just its field).
                    let mut i = i;
                    i.0.detach();
                });
            }
        });
    }
}

/// A value handed to another thread only to be dropped there.
struct ToDrop<T>(T);

// SAFETY: the value moves whole to the one thread that drops it, and nothing else refers to
// it (the agent owned it alone; its skeleton's libbpf object has no tie to a thread; the
// `Rc`s of a process's profiler, its named stacks, are held by that profiler alone: what the
// server gets of them are copies behind `Arc`).
unsafe impl<T> Send for ToDrop<T> {}

/// --max-series: the function series exported, by (pid, the kernel's function id). Once in, a
/// series stays (a series that came and went would read as a counter reset).
struct SeriesLimit {
    admitted: HashSet<(i32, u32)>,
    max: usize,
}

impl SeriesLimit {
    fn admit(&mut self, pid: i32, function: u32) -> bool {
        let key = (pid, function);
        if self.admitted.contains(&key) {
            return true;
        }
        if self.admitted.len() >= self.max {
            return false;
        }
        self.admitted.insert(key);
        true
    }
}

/// What a collection adds up over interpreters and processes for the agent's own health.
#[derive(Default)]
struct Tally {
    lost: HashMap<&'static str, u64>,
    /// Entries and capacity per map.
    maps: HashMap<&'static str, (u64, u64)>,
    dropped_series: u64,
}

impl Tally {
    fn health(self, interpreters: usize, processes: usize) -> Health {
        let mut lost: Vec<_> = self.lost.into_iter().collect();
        lost.sort();
        let mut maps: Vec<_> = self.maps.into_iter().map(|(m, (n, c))| (m, n, c)).collect();
        maps.sort();
        let (cpu_seconds, rss_bytes) = own_usage();
        Health {
            interpreters,
            processes,
            lost,
            maps,
            dropped_series: self.dropped_series,
            cpu_seconds,
            rss_bytes,
        }
    }
}

/// What is traced in a new process, for its log line.
fn describe(
    gc: bool,
    functions: bool,
    profile: bool,
    unsupported: &[(&'static str, String)],
) -> String {
    let mut parts = Vec::new();
    if gc {
        parts.push("GC and imports".to_string());
    }
    if functions {
        parts.push("functions".to_string());
    }
    if profile {
        parts.push("CPU profile".to_string());
    }
    let traced = if parts.is_empty() {
        "nothing traced".to_string()
    } else {
        format!("tracing {}", parts.join(", "))
    };
    unsupported.iter().fold(traced, |acc, (what, why)| {
        format!("{acc}; no {what}: {why}")
    })
}

fn loss_kind(loss: Loss) -> &'static str {
    match loss {
        Loss::FunctionsFull => "functions_full",
        Loss::HistFull => "histogram_full",
        Loss::ThreadsFull => "threads_full",
        Loss::TooDeep => "calls_too_deep",
        Loss::UnpairedReturns => "returns_unpaired",
        Loss::CodeReadErrors => "code_read_errors",
        Loss::ExitsUnseen => "exits_unseen",
        _ => "other",
    }
}

/// The agent's own CPU time (seconds) and resident memory (bytes).
fn own_usage() -> (f64, u64) {
    // SAFETY: sysconf with a valid name has no preconditions.
    let (tick, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
        )
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|i| stat[i + 1..].split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, the 12th and 13th after the command name.
    let cpu = (ticks(11) + ticks(12)) / tick;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    (cpu, rss * page)
}
