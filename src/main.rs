//! The `pyprobe` binary (also run as `pycount`, `pyflow`, `pygc`): parse, run, report errors.
use std::process::ExitCode;

use clap::error::ErrorKind;
use pyprobe::cli::{args_for_invocation, parse_args, usage_error};
use pyprobe::escape::escape_controls;
use pyprobe::signals::install_stop_handler;

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default): output piped into `head` ends the session in
    // order (src/output/pipe.rs), with the accounting on stderr, rather than killing pyprobe
    // mid-report.
    let argv = args_for_invocation(std::env::args_os().collect());
    let cli = match parse_args(&argv) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", usage_error::one_line(&e, &argv));
            return ExitCode::FAILURE;
        }
    };
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
        eprintln!(
            "pyprobe: error: {}",
            escape_controls(&msg.replace('\n', " "))
        );
    }));
    install_stop_handler();
    match cli.command.run() {
        // A command pyprobe started and that ended by itself gives its status, as with `time`.
        Ok(()) => {
            pyprobe::session::tracee::command_status().map_or(ExitCode::SUCCESS, ExitCode::from)
        }
        Err(e) => {
            eprintln!("pyprobe: error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}
