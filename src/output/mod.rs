//! Output formats behind one trait: every command's results (what it streams as it happens,
//! and its reports) go to an `Output`, one implementation per format, beside the results it
//! shows (commands/<command>/text.rs and json.rs, pyflow's chrome.rs and folded.rs, sample/'s
//! encoders of profiles). Here: the trait, `Format`, `Destination`, what the formats share
//! (text/ and json/: losses in words and keys; folded.rs: the SVG flame graph), file.rs makes
//! `--output` files safely, pipe.rs writes standard output from a thread of its own.
mod file;
pub mod folded;
pub mod json;
pub mod pipe;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// One output format for one command's results: `E` streamed as it happens, `R` reported per
/// interval and at the end.
pub trait Output<E, R> {
    /// Before the first event (a streamed table's header).
    fn start(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn event(&mut self, _event: &E) -> io::Result<()> {
        Ok(())
    }
    fn report(&mut self, report: &R, window: &Window) -> io::Result<()>;
    /// Makes what was written visible (streaming formats write through; a picture at the end).
    fn flush(&mut self) -> io::Result<()>;
}

/// Which stretch of the session a report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// With --interval: the time of day (UTC) at its end; each report covers its own window.
    pub clock: Option<String>,
    /// The session's last report.
    pub last: bool,
}

/// A command's results have no streamed part.
pub enum Never {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Human tables and lines
    #[default]
    Text,
    /// JSON: a document per report, an object per streamed event
    Json,
    /// Chrome trace-event JSON for Perfetto UI or chrome://tracing
    Chrome,
    /// Folded stacks (flamegraph.pl / inferno input)
    Folded,
    /// A flame graph picture
    Svg,
    /// speedscope's JSON file format (speedscope.app)
    Speedscope,
    /// pprof: gzipped profile.proto (go tool pprof, Pyroscope, Parca)
    Pprof,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Chrome => "chrome",
            Format::Folded => "folded",
            Format::Svg => "svg",
            Format::Speedscope => "speedscope",
            Format::Pprof => "pprof",
        };
        f.write_str(name)
    }
}

/// A command's own formats (made by `formats!`): its `run` matches this enum, so that every
/// format the command offers has its arm, with no wildcard to hide a missing one.
pub trait CommandFormat: Sized {
    /// Every format the command has, in the order help, completions and errors list them.
    const ALL: &'static [Format];
    /// The command's own variant of `format`, None when the command has no such format.
    fn of(format: Format) -> Option<Self>;
}

/// Declares a command's formats: `formats!(pub FlowFormat: Text, Json, Chrome)` makes the enum
/// `FlowFormat` with those variants, its `CommandFormat` impl, and the command's
/// `pub const FORMATS` (what the command line offers and checks, `cli::formats_of`). Its `run`
/// then matches `dest.format_of::<FlowFormat>()?`: a format added here without an arm there does
/// not compile.
macro_rules! formats {
    ($vis:vis $name:ident: $($variant:ident),+ $(,)?) => {
        /// This command's formats (`formats!`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($variant),+
        }

        impl $crate::output::CommandFormat for $name {
            const ALL: &'static [$crate::output::Format] = &[$($crate::output::Format::$variant),+];

            fn of(format: $crate::output::Format) -> Option<$name> {
                match format {
                    $($crate::output::Format::$variant => Some($name::$variant),)+
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }

        /// This command's formats, for the command line.
        $vis const FORMATS: &[$crate::output::Format] =
            <$name as $crate::output::CommandFormat>::ALL;
    };
}
pub(crate) use formats;

/// What a file's name says of its format: the format a file of that name is written in when
/// no --format is given, and every format such a file may hold. The first that the command
/// has among `inferred` is taken. None: the name says nothing (no extension pyprobe knows).
pub struct NamedFormat {
    /// What the name calls it, for errors: "an SVG file".
    pub kind: &'static str,
    /// In order of preference.
    pub inferred: &'static [Format],
    /// Also accepted with an explicit --format (a speedscope or Chrome trace is JSON too).
    pub accepted: &'static [Format],
}

impl Format {
    /// The format a file's name implies (its extension, case-insensitive). A `.txt` is
    /// `txt`: folded stacks for a sampled profile (as py-spy's raw output), a text table or
    /// trace elsewhere; either may be asked for.
    pub fn named_by(path: &std::path::Path, txt: Format) -> Option<NamedFormat> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let named = |kind, inferred, accepted| {
            Some(NamedFormat {
                kind,
                inferred,
                accepted,
            })
        };
        // Longest suffix first: .speedscope.json is JSON too.
        if name.ends_with(".speedscope.json") {
            named("a speedscope file", &[Format::Speedscope], &[])
        } else if name.ends_with(".json") {
            named(
                "a JSON file",
                &[Format::Json],
                &[Format::Speedscope, Format::Chrome],
            )
        } else if name.ends_with(".svg") {
            named("an SVG file", &[Format::Svg], &[])
        } else if name.ends_with(".pb.gz") {
            named("a pprof file", &[Format::Pprof], &[])
        } else if name.ends_with(".folded") {
            named("a folded-stacks file", &[Format::Folded], &[])
        } else if name.ends_with(".txt") {
            let inferred: &'static [Format] = if txt == Format::Folded {
                &[Format::Folded, Format::Text]
            } else {
                &[Format::Text]
            };
            named("a text file", inferred, &[Format::Folded, Format::Text])
        } else {
            None
        }
    }
}

/// Where results go and in which format, as the command line chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub format: Format,
    /// None: standard output.
    pub path: Option<PathBuf>,
}

impl Destination {
    /// The writer, checked before anything is traced so that a bad path fails first; a file
    /// is created (or emptied) only when the first byte is written (`file`).
    pub fn open(&self) -> Result<Box<dyn Write>> {
        Ok(match &self.path {
            Some(p) => file::open(p)?,
            None => Box::new(pipe::DetachedStdout::new()),
        })
    }

    /// The format as the command's own (`formats!`). The command line gives only a format among
    /// the command's (`OutputArgs::destination`); another is refused here too.
    pub fn format_of<F: CommandFormat>(&self) -> Result<F> {
        F::of(self.format).ok_or_else(|| {
            let names: Vec<String> = F::ALL.iter().map(|f| f.to_string()).collect();
            Error::Usage(format!(
                "no --format {} here; it has {}",
                self.format,
                names.join(", ")
            ))
        })
    }

    /// The name that errors use for it.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "<stdout>".into(), |p| p.display().to_string())
    }
}

/// A duration in the unit that keeps it readable: `850ns`, `12.3us`, `4.56ms`, `1.20s`.
pub fn duration(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", f / 1e6)
    } else {
        format!("{:.2}s", f / 1e9)
    }
}

/// `HH:MM:SS.mmmmmm` (UTC), precise enough to line events up with a service's own logs.
pub fn time_of_day(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        unix_ns % 1_000_000_000 / 1_000
    )
}

/// The wall-clock time of day (UTC) to the second, for interval headers.
pub fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    formats!(Demo: Text, Svg);

    #[test]
    fn a_command_s_formats_are_its_enum_and_its_list() {
        assert_eq!(FORMATS, &[Format::Text, Format::Svg]);
        assert_eq!(Demo::of(Format::Svg), Some(Demo::Svg));
        assert_eq!(Demo::of(Format::Json), None);
        let dest = |format| Destination { format, path: None };
        assert_eq!(dest(Format::Text).format_of::<Demo>().unwrap(), Demo::Text);
        let e = dest(Format::Json).format_of::<Demo>().unwrap_err();
        assert_eq!(e.to_string(), "no --format json here; it has text, svg");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(12_345), "12.3us");
        assert_eq!(duration(4_561_000), "4.56ms");
        assert_eq!(duration(1_200_000_000), "1.20s");
    }

    #[test]
    fn file_names_name_formats() {
        let inferred =
            |p: &str| Format::named_by(std::path::Path::new(p), Format::Folded).map(|n| n.inferred);
        assert_eq!(inferred("out.svg"), Some(&[Format::Svg][..]));
        assert_eq!(
            inferred("/tmp/P.Speedscope.JSON"),
            Some(&[Format::Speedscope][..])
        );
        assert_eq!(inferred("p.json"), Some(&[Format::Json][..]));
        assert_eq!(inferred("cpu.pb.gz"), Some(&[Format::Pprof][..]));
        assert_eq!(inferred("a.folded"), Some(&[Format::Folded][..]));
        assert_eq!(inferred("a.txt"), Some(&[Format::Folded, Format::Text][..]));
        assert_eq!(inferred("cpu.gz"), None);
        assert_eq!(inferred("report"), None);
        assert_eq!(inferred("svg"), None);
        let elsewhere = Format::named_by(std::path::Path::new("flow.txt"), Format::Text).unwrap();
        assert_eq!(elsewhere.inferred, [Format::Text]);
        assert!(elsewhere.accepted.contains(&Format::Folded));
    }

    #[test]
    fn times_of_day_keep_microseconds() {
        assert_eq!(
            time_of_day(3_600_000_000_000 + 61_250_000_000),
            "01:01:01.250000"
        );
    }
}
