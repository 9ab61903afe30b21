//! The `pyprobe` binary (also run as `pycount`, `pyflow`, `pygc`): parse, run, report errors.
use std::process::ExitCode;

use clap::Parser;
use pyprobe::cli::{Cli, Command, args_for_invocation};
use pyprobe::commands;
use pyprobe::process::install_stop_handler;

fn main() -> ExitCode {
    // Output piped into `head` should end pyprobe quietly, as it ends other Unix tools; the
    // kernel detaches every probe when the process goes, however it goes.
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse_from(args_for_invocation(std::env::args().collect()));
    if cli.verbose {
        libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, |_, msg| {
            eprint!("{msg}")
        })));
    } else {
        // libbpf's own warnings would repeat what the typed error says, in its words.
        libbpf_rs::set_print(None);
    }
    // Never a backtrace: whatever goes wrong (even writing to a full disk) is one line.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unexpected failure".into());
        eprintln!("pyprobe: error: {}", msg.replace('\n', " "));
    }));
    install_stop_handler();
    let result = match &cli.command {
        Command::Probes(a) => commands::probes::run(a),
        Command::Count(a) => commands::count::run(a),
        Command::Floor(a) => commands::floor::run(a),
        Command::Gc(a) => commands::gc::run(a),
        Command::Lines(a) => commands::lines::run(a),
        Command::Imports(a) => commands::imports::run(a),
        Command::Audit(a) => commands::audit::run(a),
        Command::Flow(a) => commands::flow::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pyprobe: error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}
