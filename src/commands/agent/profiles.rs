//! `pyprobe agent --profile`: CPU stacks of every watched process sampled in the kernel (the
//! sampler of `pyprobe record`, src/sample), kept as one window per collection for the last
//! `MAX_SECONDS`, and served as pprof (`/debug/pprof/profile?seconds=N[&pid=P]`, the pull
//! convention of Go's net/http/pprof that Parca and Pyroscope scrape).
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::metrics::ProcessLabels;
use crate::cpython::walk::Frame;
use crate::error::Result;
use crate::sample::pprof;
use crate::sample::{Profile, SampleOptions, SampleTracer, Stack, StackCount};
use crate::session::Report;
use crate::session::{Probed, Tracer};
use crate::target::Target;

/// How far back a profile can reach: the largest `seconds` served.
pub const MAX_SECONDS: u64 = 60;
/// `seconds` when a request names none (Go's default).
pub const DEFAULT_SECONDS: u64 = 30;
/// The sampling rates `--profile-hz` accepts: at 100 Hz a busy process pays for 100 stack
/// walks a second per thread on CPU (bounded by MAX_STACK_DEPTH frames each).
pub const MAX_HZ: u32 = 100;

/// One process's sampler and what it had read last (the next window is the difference).
pub struct Profiler {
    tracer: SampleTracer,
    last: Profile,
    labels: Arc<ProcessLabels>,
}

impl Profiler {
    pub fn attach(target: &Target, labels: &ProcessLabels, rate_hz: u32) -> Result<Profiler> {
        let opts = SampleOptions {
            rate_hz,
            max_stacks: 4096,
            ..SampleOptions::default()
        };
        let mut tracer = SampleTracer::attach(target, &opts)?;
        tracer.probes().arm()?;
        Ok(Profiler {
            tracer,
            last: Profile::default(),
            labels: Arc::new(labels.clone()),
        })
    }

    /// The samples since the last call, in a form the server thread can hold.
    pub fn window(&mut self) -> Result<Vec<Sample>> {
        // The kernel announces each new stack once, on a ring buffer: consumed here, before
        // the counts are read, so that every stack counted has its name.
        self.tracer.poll(Duration::ZERO, &mut Vec::new())?;
        let now = self.tracer.read()?;
        let new = now.since(&self.last);
        self.last = now;
        Ok(new
            .counts
            .into_iter()
            .filter_map(|c| {
                Some(Sample {
                    labels: self.labels.clone(),
                    tid: c.tid,
                    thread: c.thread.to_string(),
                    frames: Arc::new(c.stack?.frames.clone()),
                    count: c.count,
                })
            })
            .collect())
    }

    /// Samples the kernel took and could not count (its stack table was full).
    pub fn lost(&self) -> u64 {
        self.tracer.lost()
    }
}

/// One thread's samples of one stack, with its process's labels.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: Arc<ProcessLabels>,
    pub tid: u32,
    pub thread: String,
    /// Innermost first.
    pub frames: Arc<Vec<Frame>>,
    pub count: u64,
}

/// Every process's samples in one collection interval.
struct Window {
    end: Instant,
    elapsed: Duration,
    samples: Vec<Sample>,
}

/// The windows of the last MAX_SECONDS, shared by the collecting loop and the server.
pub struct Store {
    rate_hz: u32,
    windows: Mutex<VecDeque<Window>>,
}

impl Store {
    pub fn new(rate_hz: u32) -> Store {
        Store {
            rate_hz,
            windows: Mutex::new(VecDeque::new()),
        }
    }

    pub fn push(&self, elapsed: Duration, samples: Vec<Sample>) {
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        w.push_back(Window {
            end: now,
            elapsed,
            samples,
        });
        let keep = Duration::from_secs(MAX_SECONDS) + elapsed;
        while w.front().is_some_and(|f| now.duration_since(f.end) > keep) {
            w.pop_front();
        }
    }

    /// The gzipped profile.proto of the windows that ended in the last `seconds`, of one
    /// process or all.
    pub fn pprof(&self, seconds: u64, pid: Option<i32>) -> Vec<u8> {
        let now = Instant::now();
        let reach = Duration::from_secs(seconds);
        let mut profile = Profile {
            rate_hz: self.rate_hz,
            ..Profile::default()
        };
        let mut labels = Vec::new();
        // One count per (process, thread, stack) over the windows.
        let mut at: HashMap<(i32, u32, *const Vec<Frame>), usize> = HashMap::new();
        let mut stacks: HashMap<*const Vec<Frame>, Rc<Stack>> = HashMap::new();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        for w in windows.iter().filter(|w| now.duration_since(w.end) < reach) {
            profile.elapsed += w.elapsed;
            for s in &w.samples {
                if pid.is_some_and(|p| p != s.labels.pid) {
                    continue;
                }
                let key = (s.labels.pid, s.tid, Arc::as_ptr(&s.frames));
                if let Some(&i) = at.get(&key) {
                    profile.counts[i].count += s.count;
                    continue;
                }
                let stack = stacks
                    .entry(key.2)
                    .or_insert_with(|| {
                        Rc::new(Stack {
                            id: 0,
                            frames: s.frames.as_ref().clone(),
                            truncated: false,
                        })
                    })
                    .clone();
                at.insert(key, profile.counts.len());
                profile.counts.push(StackCount {
                    tid: s.tid,
                    thread: s.thread.as_str().into(),
                    stack: Some(stack),
                    count: s.count,
                });
                labels.push(process_labels(&s.labels));
            }
        }
        drop(windows);
        let bytes = pprof::encode_labelled(&profile, false, SystemTime::now(), &labels);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&bytes).expect("writing to a Vec cannot fail");
        gz.finish().expect("writing to a Vec cannot fail")
    }
}

/// A sample's labels in the profile: the process's, as its metrics carry them (an empty
/// container left out, as Prometheus leaves out an empty label).
fn process_labels(l: &ProcessLabels) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("pid", l.pid.to_string()),
        ("comm", l.comm.clone()),
        ("python_version", l.python_version.clone()),
    ];
    if !l.container.is_empty() {
        v.push(("container", l.container.clone()));
    }
    v
}

/// A request's `seconds` and `pid`, checked: None with the one line to answer a bad one with.
pub fn parse_query(query: Option<&str>) -> std::result::Result<(u64, Option<i32>), String> {
    let mut seconds = DEFAULT_SECONDS;
    let mut pid = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "seconds" => {
                seconds = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_SECONDS).contains(s))
                    .ok_or_else(|| {
                        format!("seconds must be a whole number from 1 to {MAX_SECONDS}")
                    })?
            }
            "pid" => {
                pid = Some(
                    v.parse()
                        .ok()
                        .filter(|p: &i32| *p > 0)
                        .ok_or_else(|| "pid must be a process id".to_string())?,
                )
            }
            _ => {}
        }
    }
    Ok((seconds, pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str) -> Frame {
        Frame {
            name: name.into(),
            file: "/w/app.py".into(),
            line: 3,
            def_line: 2,
            locals: None,
        }
    }

    fn sample(pid: i32, frames: &Arc<Vec<Frame>>, count: u64) -> Sample {
        Sample {
            labels: Arc::new(ProcessLabels {
                pid,
                comm: "app".into(),
                python_version: "3.11.2".into(),
                container: String::new(),
            }),
            tid: pid as u32,
            thread: "MainThread".into(),
            frames: frames.clone(),
            count,
        }
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn queries_are_bounded() {
        assert_eq!(parse_query(None), Ok((DEFAULT_SECONDS, None)));
        assert_eq!(parse_query(Some("seconds=3&pid=42")), Ok((3, Some(42))));
        assert!(parse_query(Some("seconds=0")).is_err());
        assert!(parse_query(Some("seconds=61")).is_err());
        assert!(parse_query(Some("seconds=x")).is_err());
        assert!(parse_query(Some("pid=-1")).is_err());
    }

    #[test]
    fn windows_are_merged_and_told_by_process() {
        let store = Store::new(19);
        let burn = Arc::new(vec![frame("burn")]);
        let light = Arc::new(vec![frame("light")]);
        store.push(
            Duration::from_secs(1),
            vec![sample(7, &burn, 3), sample(8, &light, 1)],
        );
        store.push(Duration::from_secs(1), vec![sample(7, &burn, 3)]);
        let all = gunzip(&store.pprof(10, None));
        let text = String::from_utf8_lossy(&all);
        assert!(text.contains("burn") && text.contains("light") && text.contains("pid"));
        let one = gunzip(&store.pprof(10, Some(8)));
        let text = String::from_utf8_lossy(&one);
        assert!(!text.contains("burn") && text.contains("light"));
    }
}
