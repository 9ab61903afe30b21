//! What every tracing command is given besides its own options: the process, when to stop,
//! and where the report goes; and the run of a command with one tracer and one formatter.
use std::io::Write;

use crate::error::Result;
use crate::output::{CommandFormat, Destination, Output};
use crate::session::{Schedule, Session, TargetSpec, Tracer};
use crate::target::Target;

/// The process to trace, when to stop, and where to write: the same for every tracing command.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub spec: TargetSpec,
    pub schedule: Schedule,
    pub dest: Destination,
}

impl Job {
    /// Runs the session of a command that only attaches one tracer and writes what it records:
    /// the destination opened first (a bad path fails before anything is traced), its format's
    /// formatter, the target, the tracer, then the session to its end.
    pub fn trace<F: CommandFormat, T: Tracer>(
        self,
        what: &str,
        attach: impl FnOnce(&Target) -> Result<T>,
        formatter: impl FnOnce(F, Box<dyn Write>) -> Box<dyn Output<T::Event, T::Report>>,
    ) -> Result<()>
    where
        T::Report: Default,
    {
        let w = self.dest.open()?;
        let mut out = formatter(self.dest.format_of::<F>()?, w);
        let mut session = Session::open(&self.spec, false)?;
        let mut tracer = attach(&session.target)?;
        session.run(&mut tracer, out.as_mut(), what, self.schedule)
    }
}
