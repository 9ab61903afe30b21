//! Command-line interface: parsing (no side effects) and dispatch to the command front ends.
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::output::calls::SortKey;

const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe probes --pid 1234             # which probes this interpreter has and which work
    pycount --pid 1234                    # count calls per function until Ctrl-C
    pycount --pid 1234 --filter func1     # count only func1, decided in the kernel
    pycount --latency --sort total -- python3 app.py   # time every call from the first bytecode
    pygc --pid 1234                       # GC pause histograms per generation until Ctrl-C
    pyprobe lines --pid 1234 --file app.py --top 20     # hottest source lines (CPython <= 3.11)
    pyprobe imports -- python3 app.py     # why does my program start slowly?
    pyprobe audit --pid 1234 --event 'socket.*'         # sockets opened, bound, connected
    pyflow --pid 1234 --filter 'handle_*' --subtree   # every call below handle_*, as it happens
";

#[derive(Debug, Parser)]
#[command(
    name = "pyprobe",
    version,
    about = "Trace a live CPython process with eBPF, through CPython's own USDT probes",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Print libbpf's debug output
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the interpreter's USDT probes, their semaphores, and whether they work on its version
    Probes(ProbesArgs),
    /// Count calls per function (and time them with --latency), aggregated in the kernel [pycount]
    #[command(after_help = COUNT_EXAMPLES)]
    Count(CountArgs),
    /// Every call and return as it happens, indented per thread, or as a trace or flame graph [pyflow]
    #[command(after_help = FLOW_EXAMPLES)]
    Flow(FlowArgs),
    /// Count executions per source line (file:line), hottest first; CPython up to 3.11
    #[command(after_help = LINES_EXAMPLES)]
    Lines(LinesArgs),
    /// Show every module load as a tree (which import triggered which), slowest first
    #[command(after_help = IMPORTS_EXAMPLES)]
    Imports(ImportsArgs),
    /// Stream sys.audit events (files opened, subprocesses, sockets, imports...) as they happen
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),
    /// GC pause histograms per generation, percentiles, objects collected, share of wall time [pygc]
    #[command(after_help = GC_EXAMPLES)]
    Gc(GcArgs),
    /// Empty BPF programs on the given probes: the cost floor that scripts/bench compares with
    #[command(hide = true)]
    Floor(FloorArgs),
}

#[derive(Debug, Args)]
pub struct FloorArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// A probe to attach an empty program to (repeatable)
    #[arg(long, required = true)]
    pub probe: Vec<String>,
    /// Also raise the line probe's semaphore with a never-firing uprobe (3.11 tracing mode)
    #[arg(long)]
    pub tracing_mode: bool,
    /// Stop after this many seconds
    #[arg(short, long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ProbesArgs {
    /// Process to inspect
    #[arg(short, long)]
    pub pid: i32,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The process to trace: an existing PID, or a command to start and trace from its first call.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Trace this running process
    #[arg(short, long, conflicts_with = "command")]
    pub pid: Option<i32>,
    /// Start this command and trace it from its first Python call
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Pid(i32),
    Command(Vec<String>),
}

impl TargetArgs {
    pub fn spec(&self) -> Result<TargetSpec, String> {
        match (self.pid, self.command.is_empty()) {
            (Some(p), true) => Ok(TargetSpec::Pid(p)),
            (None, false) => Ok(TargetSpec::Command(self.command.clone())),
            (None, true) => Err("no target: give --pid PID or -- COMMAND ARGS...".into()),
            (Some(_), false) => Err("give either --pid or -- COMMAND, not both".into()),
        }
    }
}

/// When to stop and when to print.
#[derive(Debug, Args, Clone)]
pub struct ScheduleArgs {
    /// Stop after this many seconds
    #[arg(short, long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,
    /// Print (and start afresh) every SECS seconds
    #[arg(short, long, value_name = "SECS", value_parser = parse_seconds)]
    pub interval: Option<Duration>,
}

const COUNT_EXAMPLES: &str = "\
EXAMPLES:
    pycount --pid 1234                          # all functions, until Ctrl-C or the process exits
    pycount --pid 1234 --filter 'handle_*'      # functions whose name starts with handle_
    pycount --pid 1234 --filter app.py:process  # process() in files ending in /app.py
    pycount --pid 1234 --latency --sort avg -d 10  # latency percentiles for 10 seconds
    pycount --json -- python3 script.py         # from the first call of a new process

Functions are shown as FILE:LINE NAME (LINE is the def line): functions that share a name
stay apart. On CPython 3.11 counting uses returns only; --latency also needs entries, which
3.11 fires only in tracing mode (about 2x the per-call cost while attached, none after).
";

#[derive(Debug, Args, Clone)]
pub struct CountArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Count only matching functions: NAME, PREFIX*, or FILE:NAME (FILE matches the end of the path); repeatable
    #[arg(short, long, value_name = "PATTERN")]
    pub filter: Vec<String>,
    /// Also time each call (entry to return, callees included) and show percentiles
    #[arg(short = 'L', long)]
    pub latency: bool,
    /// Order of the table
    #[arg(short, long, value_enum, default_value_t = SortKey::Count)]
    pub sort: SortKey,
    /// Show only the first N functions
    #[arg(short, long, value_name = "N")]
    pub top: Option<usize>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Print JSON (one document per report)
    #[arg(long)]
    pub json: bool,
    /// Size of the kernel's function table
    #[arg(long, value_name = "N", default_value_t = 10240, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_functions: u32,
}

const GC_EXAMPLES: &str = "\
EXAMPLES:
    pygc --pid 1234                    # pause histograms per generation, until Ctrl-C or exit
    pygc --pid 1234 --min-pause 10000  # also print each pause of 10 ms or more as it happens
    pygc --pid 1234 --interval 10      # a report every 10 seconds (each covers its own window)
    pygc --json -d 60 -- python3 app.py   # one JSON report after 60 s of a new process

Pauses are timed in the kernel from gc__start to gc__done of the same thread, so a pause is
the collection itself (finalizers and weakref callbacks included), without the time to take
the GIL. Works on every CPython with probes, 3.6 to 3.15 (3.12-3.14 included).
";

#[derive(Debug, Args, Clone)]
pub struct GcArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Also print each pause at least USECS microseconds long as it happens (0: every pause)
    #[arg(short, long, value_name = "USECS", allow_hyphen_values = true, value_parser = parse_usecs)]
    pub min_pause: Option<u64>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Print JSON: one document per pause and per report
    #[arg(long)]
    pub json: bool,
    /// Size of the kernel's pause buffer for --min-pause, in KiB (a power of two)
    #[arg(long, value_name = "KIB", default_value_t = 256, value_parser = parse_buffer_kib)]
    pub buffer_size: u32,
}

pub fn parse_usecs(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a whole, non-negative number of microseconds"))
}

/// A ring buffer is a power-of-two number of pages.
pub fn parse_buffer_kib(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of KiB"))?;
    if !(4..=1 << 20).contains(&v) || !v.is_power_of_two() {
        return Err(format!(
            "{s:?} must be a power of two from 4 to 1048576 KiB"
        ));
    }
    Ok(v)
}

const LINES_EXAMPLES: &str = "\
EXAMPLES:
    pyprobe lines --pid 1234                    # every line, until Ctrl-C or the process exits
    pyprobe lines --pid 1234 --file app.py      # lines of files whose path ends in /app.py
    pyprobe lines --pid 1234 --file '/srv/*' --top 20 -d 10   # 20 hottest lines under /srv
    pyprobe lines --json -- python3 script.py   # from the first line of a new process

GLOB: '*' matches any run of characters (including '/'), '?' one character. A GLOB that
starts with '/' or '*' is matched against the whole path; otherwise it also matches after any
'/'. It is decided in the kernel once per file. The line probe exists only up to CPython 3.11;
on 3.11 it puts the interpreter into tracing mode while attached (several times slower).
";

#[derive(Debug, Args, Clone)]
pub struct LinesArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Count only lines of files whose path matches GLOB
    #[arg(short, long, value_name = "GLOB")]
    pub file: Option<String>,
    /// Show only the N hottest lines
    #[arg(short, long, value_name = "N")]
    pub top: Option<usize>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Print JSON (one document per report)
    #[arg(long)]
    pub json: bool,
    /// Size of the kernel's line table
    #[arg(long, value_name = "N", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    pub max_lines: u32,
}

const IMPORTS_EXAMPLES: &str = "\
EXAMPLES:
    pyprobe imports -- python3 app.py           # why does my program start slowly?
    pyprobe imports --pid 1234 -d 30            # imports a running process makes in 30 s
    pyprobe imports --json -- python3 -c 'import pandas'

Each import is shown with its cumulative time (start to done, the imports it triggered
included) and its self time (cumulative minus its children's), indented under the import
that triggered it, slowest first at every level. Only loads are shown: an import of a module
already in sys.modules fires no probe. `from pkg import sub` loads sub inside importlib, which
fires no probe either: its time counts as pkg's self time.
";

#[derive(Debug, Args, Clone)]
pub struct ImportsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Stop after this many seconds
    #[arg(short, long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

const AUDIT_EXAMPLES: &str = "\
EXAMPLES:
    pyprobe audit --pid 1234                      # every audit event, until Ctrl-C
    pyprobe audit --pid 1234 --event 'socket.*'   # sockets only, filtered in the kernel
    pyprobe audit --event open --event 'subprocess.*' -- python3 app.py
    pyprobe audit --json --pid 1234 -d 60         # one JSON object per event, then a summary

Events are PEP 578's (CPython 3.8+). For open, subprocess.Popen, os.system, os.exec,
socket.connect, socket.bind, import, exec and compile the leading arguments are decoded in the
kernel: path, command line, address. A str that is not ASCII (and whose UTF-8 CPython has not
cached) is reported as not decoded rather than guessed. GLOB: '*' any run of characters, '?'
one character; up to 4 --event patterns, an event matching any is shown.
";

#[derive(Debug, Args, Clone)]
pub struct AuditArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Show only events whose name matches GLOB; repeatable
    #[arg(short, long, value_name = "GLOB")]
    pub event: Vec<String>,
    /// Stop after this many seconds
    #[arg(short, long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,
    /// Print one JSON object per event, then a summary object
    #[arg(long)]
    pub json: bool,
}

const FLOW_EXAMPLES: &str = "\
EXAMPLES:
    pyflow --pid 1234                               # every call and return until Ctrl-C
    pyflow --pid 1234 --filter 'handle_*' --subtree # handle_* and everything it calls
    pyflow --pid 1234 --min-duration 5000 --subtree --filter handle  # only slow requests' paths
    pyflow --pid 1234 --max-depth 2 --tid 1240      # two levels of one thread
    pyflow --json -o flow.jsonl -- python3 app.py   # JSON lines from the first bytecode
    pyflow --format chrome -o trace.json -d 5 --pid 1234   # open in ui.perfetto.dev
    pyflow --format svg -o flame.svg -- python3 app.py     # an exact, time-weighted flame graph

Each line: microseconds since tracing began, PID, TID, then -> (call) or <- (return, with the
call's duration) and FILE:LINE NAME (LINE is the def line), indented by depth in its thread.
Events stream through a ring buffer: any that do not fit are counted and reported, as they
happen on stderr and at the end. Filters are decided in the kernel. --max-depth counts shown
calls. With --min-duration a call is known only at its return, so each tree of calls is printed
when its outermost shown call returns. On CPython 3.11, entries fire only in tracing mode,
which pyflow switches on while attached (about 2x the per-call cost, none after).
";

#[derive(Debug, Args, Clone)]
pub struct FlowArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Show only matching functions: NAME, PREFIX*, or FILE:NAME (FILE matches the end of the path); repeatable
    #[arg(short, long, value_name = "PATTERN")]
    pub filter: Vec<String>,
    /// With --filter: also show every call made below a matching call
    #[arg(long)]
    pub subtree: bool,
    /// Show shown calls nested at most N deep (1: only the outermost)
    #[arg(long, value_name = "N")]
    pub max_depth: Option<u32>,
    /// Show only this thread
    #[arg(long, value_name = "TID")]
    pub tid: Option<u32>,
    /// Show only calls that took at least USECS microseconds
    #[arg(long, value_name = "USECS")]
    pub min_duration: Option<f64>,
    /// Output format
    #[arg(long, value_enum, default_value_t = crate::output::flow::FlowFormat::Text)]
    pub format: crate::output::flow::FlowFormat,
    /// Same as --format json: one JSON object per event
    #[arg(long)]
    pub json: bool,
    /// What a flame graph's widths measure (folded, svg)
    #[arg(long, value_enum, default_value_t = crate::output::flow::Weight::Time)]
    pub weight: crate::output::flow::Weight,
    /// Write to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Ring buffer size: bytes or with a K or M suffix; a power of two, at least a page
    #[arg(long, value_name = "BYTES", default_value = "4M")]
    pub buffer_size: String,
    /// Stop after this many seconds
    #[arg(short, long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,
    /// Size of the kernel's function table
    #[arg(long, value_name = "N", default_value_t = 10240, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_functions: u32,
}

impl FlowArgs {
    /// Checks the options against each other; no side effects.
    pub fn options(&self) -> crate::error::Result<crate::flow::FlowOptions> {
        use crate::error::Error::Usage;
        if self.subtree && self.filter.is_empty() {
            return Err(Usage(
                "--subtree shows what a --filter match calls: give --filter".into(),
            ));
        }
        if self.max_depth == Some(0) {
            return Err(Usage("--max-depth must be at least 1".into()));
        }
        if self.tid == Some(0) {
            return Err(Usage("--tid must be a thread id (non-zero)".into()));
        }
        let min_duration = match self.min_duration {
            None => None,
            Some(us) if us >= 0.0 && us.is_finite() => {
                Some(Duration::from_nanos((us * 1e3) as u64))
            }
            Some(us) => {
                return Err(Usage(format!(
                    "--min-duration {us} must be a number of microseconds, 0 or more"
                )));
            }
        };
        if self.json && self.format != crate::output::flow::FlowFormat::Text {
            return Err(Usage("--json is --format json: give one of them".into()));
        }
        Ok(crate::flow::FlowOptions {
            filters: crate::filter::parse_all(&self.filter)?,
            subtree: self.subtree,
            max_depth: self.max_depth,
            tid: self.tid,
            min_duration,
            buffer_size: crate::flow::parse_buffer_size(&self.buffer_size).map_err(Usage)?,
            max_functions: self.max_functions,
        })
    }

    pub fn format(&self) -> crate::output::flow::FlowFormat {
        if self.json {
            crate::output::flow::FlowFormat::Json
        } else {
            self.format
        }
    }
}

pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    // A year is longer than anyone traces; the bound keeps Instant arithmetic in range.
    if !(v > 0.0 && v <= 365.0 * 86400.0) {
        return Err(format!(
            "{s:?} must be a positive number of seconds, at most a year"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// pycount, pyflow and pygc are pyprobe under another name: map the name to the subcommand.
pub fn args_for_invocation(args: Vec<String>) -> Vec<String> {
    let Some(argv0) = args.first() else {
        return args;
    };
    let name = argv0.rsplit('/').next().unwrap_or(argv0);
    let sub = match name {
        "pycount" => "count",
        "pyflow" => "flow",
        "pygc" => "gc",
        _ => return args,
    };
    let mut out = vec!["pyprobe".to_string(), sub.to_string()];
    out.extend(args.into_iter().skip(1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(args_for_invocation(
            args.iter().map(|s| s.to_string()).collect(),
        ))
    }

    #[test]
    fn pycount_is_pyprobe_count() {
        let cli = parse(&[
            "/usr/local/bin/pycount",
            "--pid",
            "123",
            "--filter",
            "func1",
        ])
        .unwrap();
        let Command::Count(c) = cli.command else {
            panic!("not count")
        };
        assert_eq!(c.target.spec(), Ok(TargetSpec::Pid(123)));
        assert_eq!(c.filter, ["func1"]);
    }

    #[test]
    fn a_command_target_follows_the_double_dash() {
        let cli = parse(&[
            "pyprobe",
            "count",
            "--latency",
            "--",
            "python3",
            "-c",
            "pass",
        ])
        .unwrap();
        let Command::Count(c) = cli.command else {
            panic!("not count")
        };
        assert!(c.latency);
        assert_eq!(
            c.target.spec(),
            Ok(TargetSpec::Command(vec![
                "python3".into(),
                "-c".into(),
                "pass".into()
            ]))
        );
    }

    #[test]
    fn a_target_is_required_once() {
        let cli = parse(&["pycount"]).unwrap();
        let Command::Count(c) = cli.command else {
            panic!("not count")
        };
        assert!(c.target.spec().unwrap_err().contains("no target"));
        assert!(parse(&["pycount", "--pid", "1", "--", "python3"]).is_err());
    }

    fn flow(args: &[&str]) -> FlowArgs {
        let mut argv = vec!["pyflow"];
        argv.extend(args);
        match parse(&argv).unwrap().command {
            Command::Flow(f) => f,
            _ => panic!("not flow"),
        }
    }

    #[test]
    fn pyflow_options_are_checked_together() {
        let o = flow(&[
            "--pid",
            "1",
            "--filter",
            "h*",
            "--subtree",
            "--min-duration",
            "2.5",
        ])
        .options()
        .unwrap();
        assert!(o.subtree);
        assert_eq!(o.min_duration, Some(Duration::from_nanos(2500)));
        assert_eq!(o.buffer_size, 4 << 20);
        for (args, why) in [
            (&["--pid", "1", "--subtree"][..], "give --filter"),
            (&["--pid", "1", "--max-depth", "0"][..], "at least 1"),
            (&["--pid", "1", "--buffer-size", "5000"][..], "power of two"),
            (&["--pid", "1", "--min-duration=-1"][..], "microseconds"),
            (
                &["--pid", "1", "--json", "--format", "svg"][..],
                "--json is --format json",
            ),
            (&["--pid", "1", "--filter", "a*b"][..], "invalid filter"),
        ] {
            let err = flow(args).options().unwrap_err().to_string();
            assert!(err.contains(why), "{args:?}: {err}");
        }
        assert_eq!(
            flow(&["--pid", "1", "--json"]).format(),
            crate::output::flow::FlowFormat::Json
        );
    }

    #[test]
    fn pygc_is_pyprobe_gc() {
        let cli = parse(&["pygc", "--pid", "7", "--min-pause", "1500", "--json"]).unwrap();
        let Command::Gc(g) = cli.command else {
            panic!("not gc")
        };
        assert_eq!(g.target.spec(), Ok(TargetSpec::Pid(7)));
        assert_eq!(g.min_pause, Some(1500));
        assert!(g.json);
        assert_eq!(g.buffer_size, 256);
        assert!(parse(&["pygc", "--pid", "7", "--min-pause", "-5"]).is_err());
        assert!(parse(&["pygc", "--pid", "7", "--min-pause", "1ms"]).is_err());
        assert!(parse(&["pygc", "--pid", "7", "--buffer-size", "100"]).is_err());
        assert_eq!(parse_buffer_kib("1024"), Ok(1024));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["pycount", "--pid", "x"]).is_err());
        assert!(parse(&["pycount", "--pid", "1", "--duration", "-1"]).is_err());
        assert!(parse(&["pycount", "--pid", "1", "--sort", "bogus"]).is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("1e30").is_err());
        assert!(parse_seconds("NaN").is_err());
    }
}
