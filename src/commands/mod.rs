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
use crate::process::{Tracee, check_privileges};
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
