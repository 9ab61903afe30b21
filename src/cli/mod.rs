//! The command line: clap's definitions and the argument groups every command shares (target,
//! schedule, output). Parsing has no side effects; each command's file turns its arguments into
//! the validated options of its tool.
mod agent;
mod audit;
mod completions;
mod count;
mod exceptions;
mod floor;
mod flow;
mod gc;
mod imports;
mod lines;
mod manual;
mod record;
mod stacks;
mod tasks;
mod top;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub mod usage_error;

pub use agent::AgentArgs;
pub use audit::AuditArgs;
pub use completions::CompletionsArgs;
pub use count::CountArgs;
pub use exceptions::ExceptionsArgs;
pub use floor::FloorArgs;
pub use flow::FlowArgs;
pub use gc::GcArgs;
pub use imports::ImportsArgs;
pub use lines::LinesArgs;
pub use manual::ManArgs;
pub use record::{RecordArgs, SampleArgs};
pub use stacks::{StacksArgs, ThreadArgs};
pub use tasks::TasksArgs;
pub use top::TopArgs;

use crate::error::{Error, Result};
use crate::output::{Destination, Format};
use crate::session::job::Job;
use crate::session::run_as::RunAs;
use crate::session::{Schedule, TargetSpec};

const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe probes --pid 1234             # which probes this interpreter has and which work
    pyprobe count --pid 1234              # count calls per function until Ctrl-C
    pyprobe count --pid 1234 --filter func1 # count only func1, decided in the kernel
    pyprobe count --latency --sort total -- python3 app.py # time every call from the first bytecode
    pyprobe gc --pid 1234                 # GC pause histograms per generation until Ctrl-C
    pyprobe lines --pid 1234 --file app.py --top 20     # hottest source lines (CPython <= 3.11)
    pyprobe imports -- python3 app.py     # why does my program start slowly?
    pyprobe audit --pid 1234 --event 'socket.*'         # sockets opened, bound, connected
    pyprobe flow --pid 1234 --filter 'handle_*' --subtree # every call below handle_*, as it happens
    pyprobe stacks --pid 1234             # what every thread is doing now
    pyprobe record --pid 1234 -d 30s -o flame.svg   # where the time goes (format from the name)
    pyprobe top --pid 1234                # the same, live
    pyprobe agent --filter 'handle_*'     # every Python process as Prometheus metrics, at :9464

NAMES:
    pycount, pyflow and pygc are pyprobe count, flow and gc under another name: the .deb links
    them (scripts/deb); after cargo install, link them yourself: ln -s pyprobe pycount (likewise
    pyflow, pygc, next to pyprobe). Their completions come with pyprobe completions bash|fish.

PRIVILEGES:
    Commands that load BPF (count, flow, gc, lines, imports, audit, exceptions, record, top,
    agent) need root, or CAP_BPF with CAP_PERFMON. stacks, tasks and probes load none: any user
    may run them on their own processes (same uid, where kernel.yama.ptrace_scope allows: 0, or
    1 for a process they started); another user's process needs root or CAP_SYS_PTRACE.
    completions and man need nothing.

WHAT ATTACHING CHANGES:
    pyprobe writes nothing into the target's memory (but see --activate-trampoline). The kernel
    puts a breakpoint in the target's own copy of each probed code page and raises each used
    USDT probe's semaphore, and undoes both when pyprobe ends, however it ends (SIGKILL
    included). While attached, each probe hit costs the target roughly a microsecond (every
    session prints its estimate; --max-overhead PCT ends it past PCT percent), and on CPython
    3.11 pycount --latency, pyflow and lines switch the interpreter into tracing mode, slower
    until they detach. CPython's own code behind some probes fails inside a program that runs
    code from a file whose name is not UTF-8 (3.11's function probes, the line probe, the import
    probes): pycount, pyflow and lines refuse such a process unless --force. README.md's \"What
    attaching changes\" has the details.
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
    /// List the interpreter's USDT probes, their semaphores, and what works on its version (no
    /// root needed for one's own processes)
    Probes(ProbesArgs),
    /// Count calls per function (and time them with --latency), aggregated in the kernel [pycount]
    #[command(after_help = count::EXAMPLES)]
    Count(CountArgs),
    /// Every call and return as it happens, indented per thread, or as a trace or flame graph [pyflow]
    #[command(after_help = flow::EXAMPLES)]
    Flow(FlowArgs),
    /// Count executions per source line (file:line), hottest first; CPython up to 3.11
    #[command(after_help = lines::EXAMPLES)]
    Lines(LinesArgs),
    /// Show every module load as a tree (which import triggered which), slowest first
    #[command(after_help = imports::EXAMPLES)]
    Imports(ImportsArgs),
    /// Count every exception that reaches Python code by type, raise site and how far it went
    #[command(after_help = exceptions::EXAMPLES)]
    Exceptions(ExceptionsArgs),
    /// Stream sys.audit events (files opened, subprocesses, sockets, imports...) as they happen
    #[command(after_help = audit::EXAMPLES)]
    Audit(AuditArgs),
    /// GC pause histograms per generation, percentiles, objects collected, share of wall time [pygc]
    #[command(after_help = gc::EXAMPLES)]
    Gc(GcArgs),
    /// Every thread's Python stack now (like py-spy dump), with --locals their variables
    #[command(after_help = stacks::EXAMPLES)]
    Stacks(StacksArgs),
    /// Every pending asyncio task, what it awaits and which task awaits which (like asyncio pstree)
    #[command(after_help = tasks::EXAMPLES)]
    Tasks(TasksArgs),
    /// Sample every thread's Python stack into a flame graph, speedscope, pprof or a table
    #[command(after_help = record::EXAMPLES)]
    Record(RecordArgs),
    /// A live view of the functions a process spends its time in (like py-spy top)
    #[command(after_help = top::EXAMPLES)]
    Top(TopArgs),
    /// Every Python process on the host as Prometheus metrics: GC, imports, chosen functions
    #[command(after_help = agent::EXAMPLES)]
    Agent(AgentArgs),
    /// Empty BPF programs on the given probes: the cost floor that scripts/bench compares with
    #[command(hide = true)]
    Floor(FloorArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell)
    #[command(after_help = completions::EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print pyprobe's manual page (roff, for man)
    #[command(after_help = manual::EXAMPLES)]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ProbesArgs {
    /// Process to inspect
    #[arg(short, long)]
    pub pid: i32,
    /// List the code objects pycount's watchpoint source finds for NAME in the process's
    /// memory, with their watch addresses (repeatable)
    #[arg(short, long, value_name = "NAME")]
    pub filter: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ProbesArgs {
    pub fn run(&self) -> Result<()> {
        let dest = self
            .output
            .destination("pyprobe probes", crate::commands::probes::FORMATS)?;
        let filters = crate::trace::filter::parse_all(&self.filter)?;
        crate::commands::probes::run(self.pid, &filters, dest)
    }
}

impl Command {
    pub fn run(&self) -> Result<()> {
        match self {
            Command::Probes(a) => a.run(),
            Command::Count(a) => a.run(),
            Command::Flow(a) => a.run(),
            Command::Lines(a) => a.run(),
            Command::Imports(a) => a.run(),
            Command::Exceptions(a) => a.run(),
            Command::Audit(a) => a.run(),
            Command::Gc(a) => a.run(),
            Command::Stacks(a) => a.run(),
            Command::Tasks(a) => a.run(),
            Command::Record(a) => a.run(),
            Command::Top(a) => a.run(),
            Command::Agent(a) => a.run(),
            Command::Floor(a) => a.run(),
            Command::Completions(a) => a.run(),
            Command::Man(a) => a.run(),
        }
    }
}

/// Each command's formats, as its run accepts them.
fn formats_of(command: &str) -> Option<&'static [Format]> {
    Some(match command {
        "probes" => crate::commands::probes::FORMATS,
        "count" => crate::commands::count::FORMATS,
        "flow" => crate::commands::flow::FORMATS,
        "lines" => crate::commands::lines::FORMATS,
        "imports" => crate::commands::imports::FORMATS,
        "audit" => crate::commands::audit::FORMATS,
        "gc" => crate::commands::gc::FORMATS,
        "stacks" => crate::commands::stacks::FORMATS,
        "tasks" => crate::commands::tasks::FORMATS,
        "record" => crate::commands::record::FORMATS,
        "top" => crate::commands::top::FORMATS,
        "exceptions" => crate::commands::exceptions::FORMATS,
        _ => return None,
    })
}

/// `--format` as one command has it: its help, completions and man page list only the
/// command's formats; any format's name still parses, so that one the command lacks is refused
/// by `OutputArgs::destination` with the formats it has (and what chose it).
#[derive(Clone)]
struct FormatParser(&'static [Format]);

impl clap::builder::TypedValueParser for FormatParser {
    type Value = Format;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<Format, clap::Error> {
        clap::builder::EnumValueParser::<Format>::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        use clap::ValueEnum;
        Some(Box::new(
            self.0.iter().filter_map(|f| f.to_possible_value()),
        ))
    }
}

/// clap's definitions as pyprobe parses them: each command's --format narrowed to its own.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    let names: Vec<String> = cli
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    // mut_subcommand moves the command it changes to the end: every one is passed through,
    // in order, so that help and the man page keep the order of `Command`.
    for name in names {
        cli = cli.mut_subcommand(&name, |c| match formats_of(&name) {
            Some(formats) => c.mut_arg("format", |a| a.value_parser(FormatParser(formats))),
            None => c,
        });
    }
    cli
}

/// Parses a command line with `command()`'s definitions.
pub fn parse_args(argv: &[OsString]) -> std::result::Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(argv)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// The process to trace: an existing PID, or a command to start and trace from its first call.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Trace this running process
    #[arg(short, long, conflicts_with = "command", value_parser = parse_pid)]
    pub pid: Option<i32>,
    /// Start this command and trace it from its first Python call
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
    /// Run COMMAND as this user (name or uid), with its groups and home; pyprobe itself stays
    /// privileged to trace. Without it the command runs as root, with every capability
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
}

impl TargetArgs {
    /// A tracing command's job: this target, with the destination the command already checked
    /// (a bad path or format fails before the target is looked at).
    pub fn job(&self, schedule: Schedule, dest: Destination) -> Result<Job> {
        Ok(Job {
            spec: self.spec()?,
            schedule,
            dest,
        })
    }

    pub fn spec(&self) -> Result<TargetSpec> {
        if self.user.is_some() && self.command.is_empty() {
            return Err(Error::Usage(
                "--user is for a command pyprobe starts (-- COMMAND): a running process keeps \
                 its own user"
                    .into(),
            ));
        }
        match (self.pid, self.command.is_empty()) {
            (Some(p), true) => Ok(TargetSpec::Pid(p)),
            (None, false) => Ok(TargetSpec::Command(
                self.command.clone(),
                self.user.as_deref().map(RunAs::lookup).transpose()?,
            )),
            (None, true) => Err(Error::Usage(
                "no target: give --pid PID or -- COMMAND ARGS...".into(),
            )),
            (Some(_), false) => Err(Error::Usage(
                "give either --pid or -- COMMAND, not both".into(),
            )),
        }
    }
}

/// When to stop (streaming tools).
#[derive(Debug, Args, Clone)]
pub struct DurationArgs {
    /// Stop after this long: seconds (2.5), or with a unit (500ms, 2s, 1m, 1h)
    #[arg(short, long, value_name = "DURATION", value_parser = parse_seconds)]
    pub duration: Option<Duration>,
    /// Stop (and report what was recorded) once tracing slows the target by more than PCT
    /// percent, as estimated every second (the kernel's run counts and run times of pyprobe's
    /// programs, and the cost of a uprobe trap measured on this machine)
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    pub max_overhead: Option<f64>,
    /// Do not print the estimate of what tracing costs the target as it changes ("pyprobe:
    /// PID N spends ..."); the session's total is still printed at its end
    #[arg(short, long)]
    pub quiet: bool,
}

impl DurationArgs {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            duration: self.duration,
            interval: None,
            max_overhead: self.max_overhead,
            quiet: self.quiet,
        }
    }
}

/// `--activate-trampoline`: the tools that trace calls (count, flow).
#[derive(Debug, Args, Clone)]
pub struct TrampolineArg {
    /// CPython 3.14+ by --pid: switch on the process's perf trampoline if it is off (it then
    /// stays on for the life of the process: about 30 ns per call; without it 3.12-3.14 cannot
    /// be traced exactly)
    #[arg(long)]
    pub activate_trampoline: bool,
}

/// `--force`: the tools whose probes CPython 3.6-3.11 fail on a file name that is not UTF-8.
#[derive(Debug, Args, Clone)]
pub struct ForceArg {
    /// Attach even when the process runs code from a file whose name is not UTF-8: on CPython
    /// 3.6-3.11 the interpreter's own code behind the function and line probes then fails in
    /// the program (UnicodeEncodeError, then SystemError) when it runs that code
    #[arg(long)]
    pub force: bool,
}

/// When to stop and when to print (aggregating tools).
#[derive(Debug, Args, Clone)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub stop: DurationArgs,
    /// Print (and start afresh) this often: seconds, or with a unit (500ms, 2s, 1m); at least
    /// 0.1 s
    #[arg(short, long, value_name = "DURATION", value_parser = parse_interval)]
    pub interval: Option<Duration>,
}

impl ScheduleArgs {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.interval,
            ..self.stop.schedule()
        }
    }
}

/// Where the results go and in which format.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Output format (each command lists its own in its help). Without it, the --output
    /// file's name chooses: .svg, .json, .speedscope.json, .pb.gz (pprof), .folded, .txt
    /// (record: folded stacks; elsewhere text); else text
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Same as --format json
    #[arg(long)]
    pub json: bool,
    /// Write to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl OutputArgs {
    /// The format, if the command has it (`formats`), and where it goes: the one given, else
    /// the one the output file's name implies, else text. A format that contradicts the
    /// file's name is refused rather than written under a name that says otherwise.
    pub fn destination(&self, command: &str, formats: &[Format]) -> Result<Destination> {
        self.destination_txt(command, formats, Format::Text)
    }

    /// The same for a sampled profile (record), whose `.txt` is folded stacks, as py-spy's.
    pub fn profile_destination(&self, command: &str, formats: &[Format]) -> Result<Destination> {
        self.destination_txt(command, formats, Format::Folded)
    }

    fn destination_txt(
        &self,
        command: &str,
        formats: &[Format],
        txt: Format,
    ) -> Result<Destination> {
        let given = match (self.json, self.format) {
            (true, Some(f)) if f != Format::Json => {
                return Err(Error::Usage(
                    "--json is --format json: give one of them".into(),
                ));
            }
            (true, _) => Some(Format::Json),
            (false, f) => f,
        };
        let named = self
            .output
            .as_deref()
            .and_then(|p| Some((p, Format::named_by(p, txt)?)));
        let format = match (given, &named) {
            (Some(f), Some((path, n))) if !n.inferred.contains(&f) && !n.accepted.contains(&f) => {
                return Err(Error::Usage(format!(
                    "--format {f} contradicts the output file's name: {} names {}; drop \
                     --format, or name the file for {f}",
                    crate::escape::escape(&path.display().to_string()),
                    n.kind
                )));
            }
            (Some(f), _) => f,
            (None, Some((_, n))) => n
                .inferred
                .iter()
                .copied()
                .find(|f| formats.contains(f))
                .unwrap_or(n.inferred[0]),
            (None, None) => Format::Text,
        };
        if !formats.contains(&format) {
            let names: Vec<String> = formats.iter().map(|f| f.to_string()).collect();
            let from = match (given, &named) {
                (None, Some((path, n))) => format!(
                    " (chosen by the output file's name: {} names {})",
                    crate::escape::escape(&path.display().to_string()),
                    n.kind
                ),
                _ => String::new(),
            };
            return Err(Error::Usage(format!(
                "{command} has no --format {format}{from}; it has {}",
                names.join(", ")
            )));
        }
        Ok(Destination {
            format,
            path: self.output.clone(),
        })
    }
}

/// A duration: plain seconds (`2.5`), or a number with a unit: `ms`, `s`, `m` or `h`
/// (`500ms`, `2s`, `1m`).
pub fn parse_seconds(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    // "ms" before "m" and "s": the longest unit that ends the text.
    let (number, scale) = [("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .iter()
        .find_map(|&(unit, scale)| Some((t.strip_suffix(unit)?, scale)))
        .unwrap_or((t, 1.0));
    let v = number.trim().parse::<f64>().map_err(|_| {
        format!("{s:?} is not a duration: give seconds (2.5), or a unit: 500ms, 2s, 1m, 1h")
    })? * scale;
    // A year is longer than anyone traces; the bound keeps Instant arithmetic in range.
    if !(v > 0.0 && v <= 365.0 * 86400.0) {
        return Err(format!("{s:?} must be a positive duration, at most a year"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A process ID: positive, and within the kernel's largest (`/proc/sys/kernel/pid_max` is at
/// most 2^22).
pub fn parse_pid(s: &str) -> std::result::Result<i32, String> {
    const PID_MAX_LIMIT: i64 = 1 << 22;
    match s.parse::<i64>() {
        Ok(p) if (1..=PID_MAX_LIMIT).contains(&p) => Ok(p as i32),
        Ok(_) => Err(format!(
            "{s} is not a process ID: PIDs run from 1 to {PID_MAX_LIMIT}"
        )),
        Err(_) => Err(format!("{s:?} is not a process ID (a number)")),
    }
}

/// A reporting interval: at least 0.1 s (a session checks its clocks every 50 ms).
pub fn parse_interval(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_seconds(s)?;
    if d < Duration::from_millis(100) {
        return Err(format!("{s} s is too short: an interval is at least 0.1 s"));
    }
    Ok(d)
}

pub fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(format!("{s:?} must be a positive percentage"));
    }
    Ok(v)
}

pub fn parse_usecs(s: &str) -> std::result::Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a whole, non-negative number of microseconds"))
}

/// A ring buffer size: bytes, or with a K or M suffix; the kernel wants a power of two of at
/// least a page.
pub fn parse_buffer_size(text: &str) -> std::result::Result<u32, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        _ => return Err(format!("{text:?}: use bytes, or a K or M suffix")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size"))?;
    let bytes = n.saturating_mul(mult);
    let page = page_size();
    if bytes < page || !bytes.is_power_of_two() || bytes > 1 << 30 {
        return Err(format!(
            "{text:?} must be a power of two from {}K to 1024M (the kernel's ring buffer rule)",
            page >> 10
        ));
    }
    Ok(bytes as u32)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// Writes a generated script or page to standard output; a reader that stopped reading (`| head`)
/// took what it wanted, and that is no error.
fn print_generated(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(e)),
        _ => Ok(()),
    }
}

/// pycount, pyflow and pygc are pyprobe under another name: map the name to the subcommand.
/// Arguments stay OS strings: a command's file names need not be UTF-8.
pub fn args_for_invocation(args: Vec<OsString>) -> Vec<OsString> {
    let Some(argv0) = args.first() else {
        return args;
    };
    let argv0 = argv0.to_string_lossy();
    let name = argv0.rsplit('/').next().unwrap_or(&argv0);
    let sub = match name {
        "pycount" => "count",
        "pyflow" => "flow",
        "pygc" => "gc",
        _ => return args,
    };
    let mut out = vec![OsString::from("pyprobe"), OsString::from(sub)];
    out.extend(args.into_iter().skip(1));
    out
}

#[cfg(test)]
pub(crate) fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
    parse_args(&args_for_invocation(
        args.iter().map(OsString::from).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The output arguments of a command line that has them.
    fn output_of(args: &[&str]) -> OutputArgs {
        match parse(args).unwrap().command {
            Command::Count(c) => c.output,
            Command::Flow(f) => f.output,
            Command::Gc(g) => g.output,
            Command::Record(r) => r.output,
            _ => panic!("no output arguments in {args:?}"),
        }
    }

    /// The format a command line chooses (as `destination` or `profile_destination` does for
    /// `command`), or its error.
    fn format_of(
        args: &[&str],
        command: &str,
        formats: &[Format],
    ) -> std::result::Result<Format, String> {
        let out = output_of(args);
        let dest = if command == "pyprobe record" {
            out.profile_destination(command, formats)
        } else {
            out.destination(command, formats)
        };
        dest.map(|d| d.format).map_err(|e| e.to_string())
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
        assert_eq!(c.target.spec().unwrap(), TargetSpec::Pid(123));
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
            c.target.spec().unwrap(),
            TargetSpec::Command(vec!["python3".into(), "-c".into(), "pass".into()], None)
        );
    }

    #[test]
    fn a_target_is_required_once() {
        let cli = parse(&["pycount"]).unwrap();
        let Command::Count(c) = cli.command else {
            panic!("not count")
        };
        assert!(
            c.target
                .spec()
                .unwrap_err()
                .to_string()
                .contains("no target")
        );
        assert!(parse(&["pycount", "--pid", "1", "--", "python3"]).is_err());
    }

    #[test]
    fn pids_and_intervals_are_checked_with_their_reasons() {
        assert_eq!(parse_pid("4242"), Ok(4242));
        let e = parse_pid("4294967296").unwrap_err();
        assert_eq!(
            e,
            "4294967296 is not a process ID: PIDs run from 1 to 4194304"
        );
        assert!(parse_pid("0").is_err() && parse_pid("-5").is_err());
        assert_eq!(
            parse_pid("12ab").unwrap_err(),
            "\"12ab\" is not a process ID (a number)"
        );
        assert_eq!(parse_interval("0.1"), Ok(Duration::from_millis(100)));
        let e = parse_interval("1e-9").unwrap_err();
        assert_eq!(e, "1e-9 s is too short: an interval is at least 0.1 s");
    }

    #[test]
    fn a_command_may_run_as_another_user_a_pid_may_not() {
        let target = |args: &[&str]| {
            let Command::Count(c) = parse(args).unwrap().command else {
                panic!("not count")
            };
            c.target.spec()
        };
        let Ok(TargetSpec::Command(_, Some(user))) =
            target(&["pycount", "--user", "nobody", "--", "python3"])
        else {
            panic!("no user")
        };
        assert_eq!(user.name, "nobody");
        let err = target(&["pycount", "--user", "nobody", "--pid", "1"]).unwrap_err();
        assert!(err.to_string().contains("--user is for a command"), "{err}");
    }

    #[test]
    fn every_command_takes_a_format_it_has() {
        let gc = &[Format::Text, Format::Json];
        assert_eq!(
            format_of(&["pygc", "--pid", "1", "--json"], "pygc", gc),
            Ok(Format::Json)
        );
        assert_eq!(
            format_of(&["pygc", "--pid", "1", "--format", "svg"], "pygc", gc).unwrap_err(),
            "pygc has no --format svg; it has text, json"
        );
    }

    #[test]
    fn buffer_sizes_follow_the_kernel_rules() {
        assert_eq!(parse_buffer_size("4096"), Ok(4096));
        assert_eq!(parse_buffer_size("64K"), Ok(65536));
        assert_eq!(parse_buffer_size("4M"), Ok(4 << 20));
        assert!(
            parse_buffer_size("3000")
                .unwrap_err()
                .contains("power of two")
        );
        assert!(parse_buffer_size("1024").is_err());
        assert!(parse_buffer_size("12G").is_err());
        assert!(parse_buffer_size("x").is_err());
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

    /// clap's own checks of the definitions (one letter per flag in each command, ...) run
    /// only in debug builds unless asked for.
    #[test]
    fn the_definitions_pass_claps_checks() {
        command().debug_assert();
        for args in [
            &["pycount", "--pid", "1", "-q"][..],
            &["pyprobe", "record", "--pid", "1", "-q"],
            &["pyprobe", "top", "--pid", "1", "--quiet"],
            &["pyflow", "--pid", "1", "-q"],
            &["pygc", "--pid", "1", "-q"],
        ] {
            assert!(parse(args).is_ok(), "{args:?}");
        }
    }

    /// One vocabulary (issue 22): a letter means the same flag in every command (`-f` is
    /// --filter, `-t` is --top, ...), the row limit is --top (old --rows kept, hidden), the sort
    /// keys that mean the same are spelled the same, and every command that picks threads takes
    /// --tid.
    #[test]
    fn every_command_speaks_one_vocabulary() {
        use clap::CommandFactory;
        use std::collections::{BTreeMap, BTreeSet};
        let cli = Cli::command();
        let mut letters: BTreeMap<char, BTreeSet<String>> = BTreeMap::new();
        let mut with_tid = BTreeSet::new();
        let mut sorts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for cmd in cli.get_subcommands() {
            let name = cmd.get_name().to_string();
            for arg in cmd.get_arguments() {
                let long = arg.get_long().unwrap_or_default().to_string();
                if let Some(c) = arg.get_short() {
                    letters.entry(c).or_default().insert(long.clone());
                }
                match long.as_str() {
                    "filter" => assert_eq!(arg.get_short(), Some('f'), "{name} --filter"),
                    "top" => {
                        assert_eq!(arg.get_short(), Some('t'), "{name} --top");
                        let aliases = arg.get_all_aliases().unwrap_or_default();
                        assert!(aliases.contains(&"rows"), "{name} --top has no --rows");
                        let visible = arg.get_visible_aliases().unwrap_or_default();
                        assert!(!visible.contains(&"rows"), "{name} shows --rows");
                    }
                    "rows" => panic!("{name}: the row limit is --top"),
                    "tid" => {
                        with_tid.insert(name.clone());
                    }
                    "sort" => {
                        let keys = arg
                            .get_possible_values()
                            .iter()
                            .map(|v| v.get_name().to_string())
                            .collect();
                        sorts.insert(name.clone(), keys);
                    }
                    _ => {}
                }
            }
        }
        for (c, longs) in &letters {
            assert_eq!(longs.len(), 1, "-{c} means {longs:?}");
        }
        assert_eq!(letters[&'f'], BTreeSet::from(["filter".to_string()]));
        assert_eq!(letters[&'t'], BTreeSet::from(["top".to_string()]));
        for cmd in ["count", "flow", "stacks", "record", "top"] {
            assert!(with_tid.contains(cmd), "{cmd} has no --tid");
        }
        // Own, total and name mean the same in count (with --latency) as in top.
        for key in ["own", "total", "name"] {
            assert!(sorts["count"].contains(key), "count --sort {key}");
            assert!(sorts["top"].contains(key), "top --sort {key}");
        }
        // The old spellings still parse.
        for args in [
            &["pyprobe", "top", "--pid", "1", "--rows", "5"][..],
            &[
                "pyprobe", "lines", "--pid", "1", "--file", "app.py", "--rows", "5",
            ],
            &["pyprobe", "lines", "--pid", "1", "-F", "app.py", "-t", "5"],
            &["pyprobe", "record", "--pid", "1", "--top", "5"],
            &["pycount", "--pid", "1", "--tid", "7", "-t", "3", "-f", "x"],
        ] {
            assert!(parse(args).is_ok(), "{args:?}");
        }
    }

    /// Each command's help lists only the formats it has (issue 22).
    #[test]
    fn help_lists_only_a_commands_own_formats() {
        let help = |name: &str| {
            let mut cmd = command();
            cmd.build();
            cmd.find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string()
        };
        let count = help("count");
        assert!(
            count.contains("- text:") && count.contains("- json:"),
            "{count}"
        );
        for other in ["svg", "chrome", "pprof", "speedscope", "folded"] {
            assert!(
                !count.contains(&format!("- {other}:")),
                "count lists {other}"
            );
        }
        let record = help("record");
        for f in ["svg", "pprof", "speedscope", "folded", "text", "json"] {
            assert!(record.contains(&format!("- {f}:")), "record lacks {f}");
        }
        assert!(!record.contains("- chrome:"));
        let top = help("top");
        assert!(top.contains("- text:") && !top.contains("- json:"), "{top}");
        let order: Vec<String> = command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert_eq!(order[..3], ["probes", "count", "flow"]);
        // Every command with --format is narrowed.
        for cmd in command().get_subcommands() {
            if cmd.get_arguments().any(|a| a.get_id() == "format") {
                assert!(formats_of(cmd.get_name()).is_some(), "{}", cmd.get_name());
            }
        }
        // A format the command lacks parses, and is refused with the ones it has.
        let gc = crate::commands::gc::FORMATS;
        assert!(format_of(&["pygc", "--pid", "1", "--format", "svg"], "pygc", gc).is_err());
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_seconds("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_seconds("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(
            parse_seconds("2 min").unwrap_err(),
            "\"2 min\" is not a duration: give seconds (2.5), or a unit: 500ms, 2s, 1m, 1h"
        );
        assert!(parse_seconds("ms").is_err() && parse_seconds("-1s").is_err());
        assert!(parse_seconds("0ms").is_err() && parse_seconds("400d").is_err());
        assert_eq!(parse_interval("100ms"), Ok(Duration::from_millis(100)));
        assert!(parse_interval("50ms").is_err());
        // Every command's duration and interval take them.
        for args in [
            &["pycount", "--pid", "1", "-d", "2s", "-i", "500ms"][..],
            &["pyprobe", "record", "--pid", "1", "-d", "1m"],
            &["pyprobe", "top", "--pid", "1", "-d", "1m", "-i", "250ms"],
            &["pyprobe", "agent", "--interval", "2s"],
            &["pyflow", "--pid", "1", "--duration", "1.5s"],
        ] {
            assert!(parse(args).is_ok(), "{args:?}");
        }
        let Command::Count(c) = parse(&["pycount", "--pid", "1", "-d", "2s", "-i", "500ms"])
            .unwrap()
            .command
        else {
            panic!("not count")
        };
        let s = c.schedule.schedule();
        assert_eq!(s.duration, Some(Duration::from_secs(2)));
        assert_eq!(s.interval, Some(Duration::from_millis(500)));
    }

    #[test]
    fn an_output_file_name_chooses_the_format() {
        let record = |args: &[&str]| {
            let mut all = vec!["pyprobe", "record", "--pid", "1"];
            all.extend(args);
            format_of(&all, "pyprobe record", crate::commands::record::FORMATS)
        };
        assert_eq!(record(&["-o", "out.svg"]), Ok(Format::Svg));
        assert_eq!(record(&["-o", "out.json"]), Ok(Format::Json));
        assert_eq!(record(&["-o", "p.speedscope.json"]), Ok(Format::Speedscope));
        assert_eq!(record(&["-o", "cpu.pb.gz"]), Ok(Format::Pprof));
        assert_eq!(record(&["-o", "out.folded"]), Ok(Format::Folded));
        assert_eq!(record(&["-o", "out.txt"]), Ok(Format::Folded));
        assert_eq!(record(&["-o", "report"]), Ok(Format::Text));
        assert_eq!(record(&[]), Ok(Format::Text));
        // The old spellings: a format given is kept where the name allows it.
        assert_eq!(
            record(&["--format", "speedscope", "-o", "p.json"]),
            Ok(Format::Speedscope)
        );
        assert_eq!(
            record(&["--format", "text", "-o", "t.txt"]),
            Ok(Format::Text)
        );
        assert_eq!(record(&["--json", "-o", "p.json"]), Ok(Format::Json));
        assert_eq!(
            record(&["--format", "text", "-o", "out.svg"]).unwrap_err(),
            "--format text contradicts the output file's name: out.svg names an SVG file; \
             drop --format, or name the file for text"
        );
        assert!(record(&["--format", "json", "-o", "p.speedscope.json"]).is_err());
        assert!(record(&["--json", "-o", "cpu.pb.gz"]).is_err());
        // Where the command has no such format, the name is said to have chosen it.
        let count = |args: &[&str]| {
            let mut all = vec!["pycount", "--pid", "1"];
            all.extend(args);
            format_of(&all, "pycount", crate::commands::count::FORMATS)
        };
        assert_eq!(
            count(&["-o", "out.svg"]).unwrap_err(),
            "pycount has no --format svg (chosen by the output file's name: out.svg names an \
             SVG file); it has text, json"
        );
        assert_eq!(count(&["-o", "c.txt"]), Ok(Format::Text));
        // pyflow's .txt is its text trace (it has folded stacks too, if asked for).
        let flow = |args: &[&str]| {
            let mut all = vec!["pyflow", "--pid", "1"];
            all.extend(args);
            format_of(&all, "pyflow", crate::commands::flow::FORMATS)
        };
        assert_eq!(flow(&["-o", "flow.txt"]), Ok(Format::Text));
        assert_eq!(
            flow(&["-o", "f.txt", "--format", "folded"]),
            Ok(Format::Folded)
        );
        assert_eq!(flow(&["-o", "f.folded"]), Ok(Format::Folded));
        assert_eq!(flow(&["-o", "f.svg"]), Ok(Format::Svg));
        assert_eq!(flow(&["-o", "f.json"]), Ok(Format::Json));
        assert_eq!(
            flow(&["-o", "t.json", "--format", "chrome"]),
            Ok(Format::Chrome)
        );
    }
}
