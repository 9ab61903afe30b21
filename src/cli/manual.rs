//! `pyprobe man`: one manual page, in roff, for pyprobe and every command, from the command line.
use clap::Args;
use clap_mangen::Man;

use super::print_generated;
use crate::error::{Error, Result};

pub const EXAMPLES: &str = "\
EXAMPLES:
    pyprobe man | gzip > /usr/share/man/man1/pyprobe.1.gz
    pyprobe man > pyprobe.1 && man -l pyprobe.1

The page has every command with its options and examples (pyprobe --help and each command's
--help say the same).
";

#[derive(Debug, Args)]
pub struct ManArgs {}

impl ManArgs {
    pub fn run(&self) -> Result<()> {
        let page = page().map_err(Error::Output)?;
        print_generated(page.as_bytes())
    }
}

/// The page: clap_mangen's title, name, synopsis, description and options of pyprobe, then a
/// section per command (clap_mangen would point to a page per command, which a single binary
/// copied alone would not have), then pyprobe's own after-help sections.
fn page() -> std::io::Result<String> {
    let mut cli = super::command();
    cli.build();
    let man = Man::new(cli.clone()).manual("User Commands");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    // Option names are not to be hyphenated, nor the option tables' lines justified.
    out.extend_from_slice(b".nh\n.ad l\n");
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    out.extend_from_slice(b".PP\n");
    out.extend_from_slice(
        text_line(
            "pycount, pyflow and pygc are pyprobe under other names (a symbolic link): they run \
             pyprobe count, pyprobe flow and pyprobe gc.",
        )
        .as_bytes(),
    );
    man.render_options_section(&mut out)?;
    let mut page = String::from_utf8_lossy(&out).into_owned();

    page.push_str(".SH COMMANDS\n");
    for sub in cli
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        page.push_str(&command_section(sub)?);
    }
    if let Some(after) = cli.get_after_help() {
        page.push_str(&after_help(&after.to_string(), ".SH"));
    }
    let mut version = Vec::new();
    man.render_version_section(&mut version)?;
    page.push_str(&String::from_utf8_lossy(&version));
    Ok(page)
}

/// One command: its name as a subsection, what it does, its synopsis, options and examples.
fn command_section(sub: &clap::Command) -> std::io::Result<String> {
    let name = sub.get_bin_name().unwrap_or_else(|| sub.get_name());
    let mut s = format!(".SS \"{}\"\n", escape(name));
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        s.push_str(&text_line(&about.to_string()));
    }
    // --verbose and --help are pyprobe's, said once above, not under every command.
    let mut sub = sub.clone();
    for shared in ["verbose", "help"] {
        if sub.get_arguments().any(|a| a.get_id() == shared) {
            sub = sub.mut_arg(shared, |a| a.hide(true));
        }
    }
    let man = Man::new(sub.clone());
    let mut parts = b".PP\n".to_vec();
    man.render_synopsis_section(&mut parts)?;
    parts.extend_from_slice(b".PP\n");
    man.render_options_section(&mut parts)?;
    // The command's own section headings (SYNOPSIS, OPTIONS) would end the COMMANDS section.
    for line in String::from_utf8_lossy(&parts).lines() {
        if !line.starts_with(".SH") {
            s.push_str(line);
            s.push('\n');
        }
    }
    if let Some(after) = sub.get_after_help() {
        s.push_str(&after_help(&after.to_string(), ".PP\n.B"));
    }
    Ok(s)
}

/// The after-help text: paragraphs, each opened by a `HEADING:` line or not. EXAMPLES keep their
/// lines (one command and its comment each); prose is left to the formatter to fill.
fn after_help(text: &str, heading: &str) -> String {
    let mut s = String::new();
    for paragraph in text.split("\n\n") {
        let mut lines = paragraph.lines().peekable();
        let title = lines
            .next_if(|l| l.ends_with(':') && l.chars().all(|c| !c.is_lowercase()))
            .map(|l| l.trim_end_matches(':'));
        match title {
            Some(t) => s.push_str(&format!("{heading} \"{}\"\n", escape(t))),
            None => s.push_str(".PP\n"),
        }
        if title == Some("EXAMPLES") {
            s.push_str(".nf\n");
            for l in lines {
                s.push_str(&text_line(l));
            }
            s.push_str(".fi\n");
        } else {
            for l in lines {
                s.push_str(&text_line(l.trim()));
            }
        }
    }
    s
}

/// A line of text, safe from roff: a backslash printed as itself, a hyphen as a minus (what a
/// reader copying an option needs), and a leading `.` or `'` not taken as a request.
fn text_line(line: &str) -> String {
    let escaped = escape(line);
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}\n")
    } else {
        format!("{escaped}\n")
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_keep_their_lines_and_prose_is_filled() {
        let roff = after_help(
            "EXAMPLES:\n    pycount --pid 1  # count\n\nA line\n  and its end.\n",
            ".SH",
        );
        assert_eq!(
            roff,
            ".SH \"EXAMPLES\"\n.nf\n    pycount \\-\\-pid 1  # count\n.fi\n.PP\nA line\nand its end.\n"
        );
    }

    #[test]
    fn text_is_never_a_request() {
        assert_eq!(text_line(".hidden"), "\\&.hidden\n");
        assert_eq!(text_line("'quoted"), "\\&'quoted\n");
        assert_eq!(text_line(r"a\b"), "a\\eb\n");
    }
}
