//! The `pyprobe` binary (also run as `pycount`, `pyflow`, `pygc`): parse, run, report errors.
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use pyprobe::cli::{Cli, args_for_invocation};
use pyprobe::signals::install_stop_handler;

fn main() -> ExitCode {
    // Output piped into `head` should end pyprobe quietly, as it ends other Unix tools; the
    // kernel detaches every probe when the process goes, however it goes.
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match Cli::try_parse_from(args_for_invocation(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line_usage_error(&e.render().to_string()));
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
        eprintln!("pyprobe: error: {}", msg.replace('\n', " "));
    }));
    install_stop_handler();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pyprobe: error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}

/// clap's message on one line: its `error:` line with any tip, without the usage and the
/// pointer to --help.
fn one_line_usage_error(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join(" ")
}
