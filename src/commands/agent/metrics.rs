//! What the agent exposes: one snapshot of every traced process and of the agent itself,
//! encoded in the Prometheus text format by prometheus-client.
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::buckets::Buckets;
use crate::abi::limits::GC_GENERATIONS;

/// The content type of what `encode` writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The labels every per-process series carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ProcessLabels {
    pub pid: i32,
    pub comm: String,
    pub python_version: String,
    /// The container id (from the cgroup path), or the root directory of a chrooted process;
    /// empty for the host's own processes (Prometheus then shows no label).
    pub container: String,
}

impl ProcessLabels {
    fn with(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("pid", self.pid.to_string()),
            ("comm", self.comm.clone()),
            ("python_version", self.python_version.clone()),
            ("container", self.container.clone()),
        ];
        v.extend(extra.iter().cloned());
        v
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcGeneration {
    pub pauses: Buckets,
    /// What `gc.collect()` returns, summed: objects collected plus uncollectable.
    pub collected: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionSeries {
    pub name: String,
    pub file: String,
    pub line: i32,
    pub calls: u64,
    /// None without --latency.
    pub latency: Option<Buckets>,
}

/// Where a process's function probes are.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionProbes {
    Active,
    /// Stopped for good (over the overhead budget); the last counts stay exported.
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessMetrics {
    pub labels: ProcessLabels,
    /// Per generation; None where the GC probes cannot be attached.
    pub gc: Option<[GcGeneration; GC_GENERATIONS]>,
    pub imports: Option<Buckets>,
    pub functions: Vec<FunctionSeries>,
    /// Calls of matched functions beyond --max-series (their series are not exported).
    pub dropped_calls: u64,
    /// None without --filter.
    pub function_probes: Option<FunctionProbes>,
    /// What the function probes cost the process, as a fraction of its untraced run time.
    pub overhead: Option<f64>,
}

/// A process (or one of its measurements) pyprobe cannot trace, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported {
    pub labels: ProcessLabels,
    pub what: &'static str,
    pub reason: String,
}

/// The agent's own health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub interpreters: usize,
    pub processes: usize,
    /// Events the kernel side could not record, by kind.
    pub lost: Vec<(&'static str, u64)>,
    /// Kernel maps summed over interpreters and processes: (map, entries, capacity).
    pub maps: Vec<(&'static str, u64, u64)>,
    pub dropped_series: u64,
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub processes: Vec<ProcessMetrics>,
    pub unsupported: Vec<Unsupported>,
    pub health: Health,
}

/// The snapshot in the Prometheus text format (version 0.0.4).
pub fn encode(snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: its descriptor once, then each series.
fn family<'a, V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    series: impl IntoIterator<Item = (Labels, V)>,
    mut write: impl FnMut(&mut prometheus_client::encoding::MetricEncoder, &V) -> std::fmt::Result,
) -> std::fmt::Result
where
    V: 'a,
{
    let mut series = series.into_iter().peekable();
    // A family without series is left out, as client libraries do with empty label sets.
    if series.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in series {
        let mut m = metric.encode_family(&labels)?;
        write(&mut m, &value)?;
    }
    Ok(())
}

fn counter(m: &mut prometheus_client::encoding::MetricEncoder, v: &u64) -> std::fmt::Result {
    m.encode_counter::<NoLabelSet, u64, f64>(v, None)
}

fn gauge(m: &mut prometheus_client::encoding::MetricEncoder, v: &f64) -> std::fmt::Result {
    m.encode_gauge(v)
}

fn histogram(m: &mut prometheus_client::encoding::MetricEncoder, b: &Buckets) -> std::fmt::Result {
    m.encode_histogram::<NoLabelSet>(b.sum_seconds(), b.count, &b.prometheus(), None)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let seconds = Unit::Seconds;
        let procs = &self.processes;
        let gens = || {
            procs.iter().flat_map(|p| {
                p.gc.iter().flat_map(move |g| {
                    g.iter()
                        .enumerate()
                        .map(move |(i, s)| (p.labels.with(&[("generation", i.to_string())]), s))
                })
            })
        };
        family(
            &mut e,
            "python_gc_pause",
            "GC pauses per generation, timed in the kernel from gc__start to gc__done",
            Some(&seconds),
            MetricType::Histogram,
            gens().map(|(l, s)| (l, s.pauses.clone())),
            histogram,
        )?;
        family(
            &mut e,
            "python_gc_collections",
            "GC collections per generation",
            None,
            MetricType::Counter,
            gens().map(|(l, s)| (l, s.pauses.count)),
            counter,
        )?;
        family(
            &mut e,
            "python_gc_collected_objects",
            "Objects the GC collected (collected plus uncollectable, as gc.collect() returns)",
            None,
            MetricType::Counter,
            gens().map(|(l, s)| (l, s.collected)),
            counter,
        )?;
        let imports = || {
            procs
                .iter()
                .filter_map(|p| p.imports.as_ref().map(|b| (p.labels.with(&[]), b)))
        };
        family(
            &mut e,
            "python_imports",
            "Modules loaded (import__find__load__start/done pairs)",
            None,
            MetricType::Counter,
            imports().map(|(l, b)| (l, b.count)),
            counter,
        )?;
        family(
            &mut e,
            "python_import_duration",
            "Time to load a module, including the imports it triggered",
            Some(&seconds),
            MetricType::Histogram,
            imports().map(|(l, b)| (l, b.clone())),
            histogram,
        )?;
        let functions = || {
            procs.iter().flat_map(|p| {
                p.functions.iter().map(move |f| {
                    let l = p.labels.with(&[
                        ("function", f.name.clone()),
                        ("file", f.file.clone()),
                        ("line", f.line.to_string()),
                    ]);
                    (l, f)
                })
            })
        };
        family(
            &mut e,
            "python_function_calls",
            "Calls of the functions selected with --filter",
            None,
            MetricType::Counter,
            functions().map(|(l, f)| (l, f.calls)),
            counter,
        )?;
        family(
            &mut e,
            "python_function_duration",
            "Duration of the calls of the functions selected with --filter, entry to return",
            Some(&seconds),
            MetricType::Histogram,
            functions().filter_map(|(l, f)| f.latency.clone().map(|b| (l, b))),
            histogram,
        )?;
        let traced = || procs.iter().filter(|p| p.function_probes.is_some());
        family(
            &mut e,
            "pyprobe_function_calls_dropped",
            "Calls of matched functions whose series were left out (over --max-series)",
            None,
            MetricType::Counter,
            traced().map(|p| (p.labels.with(&[]), p.dropped_calls)),
            counter,
        )?;
        family(
            &mut e,
            "pyprobe_function_probes_active",
            "1 while the process's function probes run; 0 once stopped over the overhead budget",
            None,
            MetricType::Gauge,
            traced().map(|p| {
                let on = p.function_probes == Some(FunctionProbes::Active);
                (p.labels.with(&[]), if on { 1.0 } else { 0.0 })
            }),
            gauge,
        )?;
        family(
            &mut e,
            "pyprobe_overhead_ratio",
            "Estimated slowdown of the process by its function probes (0.05: 5% slower)",
            None,
            MetricType::Gauge,
            traced().filter_map(|p| p.overhead.map(|o| (p.labels.with(&[]), o))),
            gauge,
        )?;
        family(
            &mut e,
            "pyprobe_unsupported_processes",
            "Python processes (or one measurement of them) that cannot be traced, with the reason",
            None,
            MetricType::Gauge,
            self.unsupported.iter().map(|u| {
                let l = u
                    .labels
                    .with(&[("what", u.what.to_string()), ("reason", u.reason.clone())]);
                (l, 1.0)
            }),
            gauge,
        )?;
        self.health.encode(&mut e)
    }
}

impl Health {
    fn encode(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let one = |v: f64| [(Labels::new(), v)];
        family(
            e,
            "pyprobe_attached_interpreters",
            "Interpreter files with the agent's system-wide probes attached",
            None,
            MetricType::Gauge,
            one(self.interpreters as f64),
            gauge,
        )?;
        family(
            e,
            "pyprobe_traced_processes",
            "Python processes traced",
            None,
            MetricType::Gauge,
            one(self.processes as f64),
            gauge,
        )?;
        family(
            e,
            "pyprobe_lost_events",
            "Events the kernel side could not record, by kind",
            None,
            MetricType::Counter,
            self.lost
                .iter()
                .map(|(k, v)| (vec![("kind", k.to_string())], *v)),
            counter,
        )?;
        family(
            e,
            "pyprobe_bpf_map_entries",
            "Entries in the agent's kernel maps",
            None,
            MetricType::Gauge,
            self.maps
                .iter()
                .map(|(m, n, _)| (vec![("map", m.to_string())], *n as f64)),
            gauge,
        )?;
        family(
            e,
            "pyprobe_bpf_map_capacity",
            "Capacity of the agent's kernel maps",
            None,
            MetricType::Gauge,
            self.maps
                .iter()
                .map(|(m, _, c)| (vec![("map", m.to_string())], *c as f64)),
            gauge,
        )?;
        family(
            e,
            "pyprobe_function_series_dropped",
            "Functions left out over --max-series",
            None,
            MetricType::Gauge,
            one(self.dropped_series as f64),
            gauge,
        )?;
        family(
            e,
            "process_cpu_seconds",
            "CPU time the agent used (user and system)",
            None,
            MetricType::Counter,
            [(Labels::new(), self.cpu_seconds)],
            |m, v: &f64| m.encode_counter::<NoLabelSet, f64, f64>(v, None),
        )?;
        family(
            e,
            "process_resident_memory",
            "The agent's resident memory",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            one(self.rss_bytes as f64),
            gauge,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process() -> ProcessMetrics {
        let mut gen0 = GcGeneration::default();
        gen0.pauses.counts[2] = 3;
        gen0.pauses.count = 3;
        gen0.pauses.sum_ns = 90_000;
        gen0.collected = 12;
        ProcessMetrics {
            labels: ProcessLabels {
                pid: 42,
                comm: "python3.11".into(),
                python_version: "3.11.2".into(),
                container: String::new(),
            },
            gc: Some([gen0, GcGeneration::default(), GcGeneration::default()]),
            imports: None,
            functions: vec![FunctionSeries {
                name: "handle".into(),
                file: "/srv/app.py".into(),
                line: 7,
                calls: 5,
                latency: Some(Buckets::default()),
            }],
            dropped_calls: 0,
            function_probes: Some(FunctionProbes::Active),
            overhead: Some(0.02),
        }
    }

    #[test]
    fn encodes_counters_histograms_and_labels() {
        let text = encode(Snapshot {
            processes: vec![process()],
            ..Snapshot::default()
        });
        let labels = r#"pid="42",comm="python3.11",python_version="3.11.2",container="""#;
        assert!(text.contains(&format!(
            "python_gc_collections_total{{{labels},generation=\"0\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "python_gc_pause_seconds_bucket{{{labels},generation=\"0\",le=\"5e-05\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "python_gc_pause_seconds_bucket{{{labels},generation=\"0\",le=\"+Inf\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "python_gc_collected_objects_total{{{labels},generation=\"0\"}} 12\n"
        )));
        assert!(text.contains(&format!(
            "python_function_calls_total{{{labels},function=\"handle\",file=\"/srv/app.py\",line=\"7\"}} 5\n"
        )));
        assert!(text.contains("# TYPE python_gc_pause_seconds histogram\n"));
        assert!(text.contains(&format!("pyprobe_overhead_ratio{{{labels}}} 0.02\n")));
        assert!(!text.contains("python_imports_total"));
    }
}
