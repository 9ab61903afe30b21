//! clap's errors as pyprobe's one line (`pyprobe: error: ...`, exit status 1), with a "did you
//! mean" for a mistyped flag, which clap leaves out for commands that take `-- COMMAND`.
use std::ffi::OsString;

use clap::CommandFactory;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::Cli;

/// The one line for a parse error of `argv` (as `args_for_invocation` made it).
pub fn one_line(e: &clap::Error, argv: &[OsString]) -> String {
    let rendered = e.render().to_string();
    let line = rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line).to_string();
    let guess = (e.kind() == ErrorKind::UnknownArgument)
        .then(|| e.get(ContextKind::InvalidArg))
        .flatten()
        .and_then(|bad| match bad {
            ContextValue::String(bad) => Some(bad.clone()),
            _ => None,
        })
        .and_then(|bad| {
            let flag = bad.split('=').next().unwrap_or(&bad).to_string();
            closest_flag(&flag, argv.get(1).and_then(|s| s.to_str())).map(|g| (flag, g))
        });
    match guess {
        Some((bad, flag)) => {
            format!("pyprobe: error: unexpected argument '{bad}': did you mean '{flag}'?")
        }
        None => format!("pyprobe: error: {line}"),
    }
}

/// The subcommand's (or the top level's) long flag nearest to `bad`, if one is near.
fn closest_flag(bad: &str, subcommand: Option<&str>) -> Option<String> {
    let bad = bad.strip_prefix("--")?;
    let top = Cli::command();
    let cmd = subcommand
        .and_then(|s| top.find_subcommand(s).cloned())
        .unwrap_or(top);
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .map(|long| (strsim::damerau_levenshtein(bad, long), long))
        .filter(|(d, long)| *d <= 2 && *d < long.len())
        .min()
        .map(|(_, long)| format!("--{long}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args_for_invocation;
    use clap::Parser;

    fn error_for(args: &[&str]) -> String {
        let argv = args_for_invocation(args.iter().map(OsString::from).collect());
        let e = Cli::try_parse_from(&argv).unwrap_err();
        one_line(&e, &argv)
    }

    #[test]
    fn a_mistyped_flag_gets_the_nearest_one() {
        assert_eq!(
            error_for(&["pycount", "--pdi", "3"]),
            "pyprobe: error: unexpected argument '--pdi': did you mean '--pid'?"
        );
        assert_eq!(
            error_for(&["pyprobe", "flow", "--filtr=x", "--pid", "3"]),
            "pyprobe: error: unexpected argument '--filtr': did you mean '--filter'?"
        );
    }

    #[test]
    fn other_errors_are_clap_s_own_words_on_one_line() {
        let e = error_for(&["pycount", "--pid", "abc"]);
        assert!(
            e.starts_with("pyprobe: error: invalid value 'abc' for '--pid <PID>'"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
        let e = error_for(&["pycount", "--zzzzzzzz"]);
        assert!(
            e.starts_with("pyprobe: error: unexpected argument '--zzzzzzzz'"),
            "{e}"
        );
    }
}
