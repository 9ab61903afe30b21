//! `pyprobe completions SHELL`: the shell's completion script, generated from the command line.
use clap::Args;
use clap_complete::Shell;

use super::{command, print_generated};
use crate::error::Result;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe completions bash > /usr/share/bash-completion/completions/pyprobe
    pyprobe completions zsh > /usr/local/share/zsh/site-functions/_pyprobe
    pyprobe completions fish > ~/.config/fish/completions/pyprobe.fish
    source <(pyprobe completions bash)          # this shell only

The script completes pyprobe's commands and options, and for bash, fish, elvish and
powershell also pycount, pyflow and pygc (pyprobe count, flow and gc under another name; bash
and fish load a command's completions by its name, so link pycount's file to pyprobe's, as
the .deb does). zsh's script completes pyprobe only.
";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: Shell,
}

impl CompletionsArgs {
    pub fn run(&self) -> Result<()> {
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut visible_cli(), "pyprobe", &mut script);
        // zsh autoloads a file as one function named by its first line: a second command's
        // script appended would never run.
        if self.shell != Shell::Zsh {
            for (alias, sub) in [("pycount", "count"), ("pyflow", "flow"), ("pygc", "gc")] {
                clap_complete::generate(self.shell, &mut alias_cli(alias, sub), alias, &mut script);
            }
        }
        print_generated(&script)
    }
}

/// A link's command line: the subcommand it runs, as a program of its own.
fn alias_cli(alias: &'static str, sub: &str) -> clap::Command {
    let cli = command();
    let sub = cli.find_subcommand(sub).expect("a subcommand").clone();
    sub.name(alias)
        .bin_name(alias)
        .args(cli.get_arguments().filter(|a| a.is_global_set()).cloned())
}

/// pyprobe's command line without its hidden commands, which clap_complete would offer.
fn visible_cli() -> clap::Command {
    let cli = command();
    clap::Command::new("pyprobe")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}
