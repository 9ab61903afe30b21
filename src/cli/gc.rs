//! `pygc` / `pyprobe gc`: its arguments and their validation.
use std::time::Duration;

use clap::Args;

use super::{OutputArgs, ScheduleArgs, TargetArgs, parse_buffer_size, parse_usecs};
use crate::commands::gc::{self, GcOptions};
use crate::error::Result;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe gc --pid 1234                      # pause histograms per generation, until Ctrl-C or exit
    pyprobe gc --pid 1234 --min-pause 10000    # also print each pause of 10 ms or more as it happens
    pyprobe gc --pid 1234 --interval 10        # a report every 10 seconds (each covers its own window)
    pyprobe gc --json -d 60 -- python3 app.py  # one JSON report after 60 s of a new process

Pauses are timed in the kernel from gc__start to gc__done of the same thread, so a pause is
the collection itself (finalizers and weakref callbacks included), without the time to take
the GIL. Works on every CPython with probes, 3.6 to 3.15 (3.12-3.14 included).
Formats: text, json.
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
    #[command(flatten)]
    pub output: OutputArgs,
    /// Size of the kernel's pause buffer for --min-pause: bytes or with a K or M suffix, a power of two
    #[arg(long, value_name = "SIZE", default_value = "256K", value_parser = parse_buffer_size)]
    pub buffer_size: u32,
}

impl GcArgs {
    pub fn run(&self) -> Result<()> {
        let opts = GcOptions {
            min_pause: self.min_pause.map(Duration::from_micros),
            buffer_bytes: self.buffer_size,
        };
        let dest = self.output.destination("pygc", gc::FORMATS)?;
        gc::run(self.target.job(self.schedule.schedule(), dest)?, &opts)
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Command, parse};
    use crate::session::TargetSpec;

    #[test]
    fn pygc_is_pyprobe_gc() {
        let cli = parse(&["pygc", "--pid", "7", "--min-pause", "1500", "--json"]).unwrap();
        let Command::Gc(g) = cli.command else {
            panic!("not gc")
        };
        assert_eq!(g.target.spec().unwrap(), TargetSpec::Pid(7));
        assert_eq!(g.min_pause, Some(1500));
        assert!(g.output.json);
        assert_eq!(g.buffer_size, 256 << 10);
        assert!(parse(&["pygc", "--pid", "7", "--min-pause", "-5"]).is_err());
        assert!(parse(&["pygc", "--pid", "7", "--min-pause", "1ms"]).is_err());
        assert!(parse(&["pygc", "--pid", "7", "--buffer-size", "100"]).is_err());
    }
}
