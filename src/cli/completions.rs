//! `pyprobe completions SHELL`: the shell's completion script, generated from the command line.
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, print_generated};
use crate::error::Result;

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe completions bash > /usr/share/bash-completion/completions/pyprobe
    pyprobe completions zsh > /usr/local/share/zsh/site-functions/_pyprobe
    pyprobe completions fish > ~/.config/fish/completions/pyprobe.fish
    source <(pyprobe completions bash)          # this shell only

The script completes pyprobe's commands and options; pycount, pyflow and pygc are not completed.
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
        print_generated(&script)
    }
}

/// pyprobe's command line without its hidden commands, which clap_complete would offer.
fn visible_cli() -> clap::Command {
    let cli = Cli::command();
    clap::Command::new("pyprobe")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}
