//! `pyprobe probes --pid PID`.
use crate::cli::ProbesArgs;
use crate::error::Result;
use crate::output::probes;
use crate::target::Target;

pub fn run(args: &ProbesArgs) -> Result<()> {
    let target = Target::from_pid(args.pid)?;
    if args.json {
        println!("{}", probes::json(&target));
    } else {
        print!("{}", probes::table(&target));
    }
    Ok(())
}
