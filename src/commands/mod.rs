//! Front ends of the subcommands: each turns parsed arguments into a traced session and output.
pub mod audit;
pub mod count;
pub mod floor;
pub mod flow;
pub mod gc;
pub mod imports;
pub mod lines;
pub mod probes;

use crate::cli::{TargetArgs, TargetSpec};
use crate::error::{Error, Result};
use crate::process::{Schedule, Tracee, check_privileges, run_session};
use crate::target::Target;

/// Finds (or starts, held at exec) the process to trace, after checking that tracing is allowed.
pub fn open_target(args: &TargetArgs) -> Result<(Tracee, Target)> {
    let spec = args.spec().map_err(Error::Usage)?;
    check_privileges()?;
    match spec {
        TargetSpec::Pid(pid) => {
            let target = Target::from_pid(pid)?;
            Ok((Tracee::attach(pid), target))
        }
        TargetSpec::Command(argv) => Tracee::spawn(&argv),
    }
}

/// The line that tells the user (and tests) that probes are live.
pub fn banner(what: &str, target: &Target) {
    eprintln!(
        "Tracing {what} in PID {} (CPython {}, {})... Hit Ctrl-C to end.",
        target.pid,
        target.version_text(),
        target.interpreter
    );
}

/// Runs an aggregating tool's session: every `--interval` it prints the window since the last
/// report (under a clock line, in text), and at the end the rest, read before the probes are
/// detached (dropping `tracer`) and printed after.
pub fn report_until_stopped<T, R: Default>(
    tracee: &mut Tracee,
    schedule: Schedule,
    json: bool,
    tracer: T,
    read: impl Fn(&T) -> Result<R>,
    since: impl Fn(&R, &R) -> R,
    print: impl Fn(&R),
) -> Result<()> {
    let mut last = R::default();
    run_session(
        tracee,
        schedule,
        |d| {
            std::thread::sleep(d);
            Ok(())
        },
        || {
            let now = read(&tracer)?;
            if !json {
                println!("\n{}", clock());
            }
            print(&since(&now, &last));
            last = now;
            Ok(())
        },
    )?;
    let now = read(&tracer)?;
    drop(tracer);
    tracee.finish();
    if schedule.interval.is_some() && !json {
        println!("\n{}", clock());
    }
    print(&since(&now, &last));
    Ok(())
}

/// Wall-clock time of day (UTC) for interval headers.
pub fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}
