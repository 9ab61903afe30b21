//! pyprobe lines' engine: loads bpf/lines.bpf.c for one target, attaches it to the line probe,
//! and reads executions per `file:line` out of the kernel maps.
use std::collections::{BTreeMap, HashMap};
use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};

use crate::attach;
use crate::bpf::lines::{LinesSkel, LinesSkelBuilder};
use crate::bpf::probe_types::{LineFile, LineKey};
use crate::bpf::record;
use crate::count::c_string;
use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::requirements;
use crate::target::Target;

#[derive(Debug, Clone, Default)]
pub struct LineOptions {
    /// Count only lines of files matching one of these (none: every file).
    pub files: Vec<Glob>,
    pub max_lines: u32,
}

/// Executions of one source line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineStats {
    pub file: String,
    pub file_truncated: bool,
    pub line: u32,
    pub count: u64,
}

/// What the kernel could not count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineLosses {
    /// Executions not counted because the line table was full (its size is `table_size`).
    pub lines_full: u64,
    pub table_size: u32,
    /// Executions not counted because the file-name table was full.
    pub files_full: u64,
}

impl LineLosses {
    pub fn since(&self, e: &LineLosses) -> LineLosses {
        LineLosses {
            lines_full: self.lines_full.saturating_sub(e.lines_full),
            table_size: self.table_size,
            files_full: self.files_full.saturating_sub(e.files_full),
        }
    }

    /// Human lines for every non-zero counter; empty when nothing was lost.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.lines_full > 0 {
            out.push(format!(
                "{} line executions not counted: line table full ({} lines; raise --max-lines)",
                self.lines_full, self.table_size
            ));
        }
        if self.files_full > 0 {
            out.push(format!(
                "{} line executions not counted: file-name table full",
                self.files_full
            ));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "lines_full": self.lines_full,
            "line_table_size": self.table_size,
            "files_full": self.files_full,
        })
    }
}

/// A reading of every counted line, plus what was lost.
#[derive(Debug, Clone, Default)]
pub struct LineReport {
    pub lines: Vec<LineStats>,
    pub losses: LineLosses,
}

impl LineReport {
    /// The executions since an earlier reading (for --interval).
    pub fn since(&self, earlier: &LineReport) -> LineReport {
        let before: HashMap<(&str, bool, u32), u64> = earlier
            .lines
            .iter()
            .map(|l| ((l.file.as_str(), l.file_truncated, l.line), l.count))
            .collect();
        let lines = self
            .lines
            .iter()
            .map(|l| LineStats {
                count: l.count
                    - before
                        .get(&(l.file.as_str(), l.file_truncated, l.line))
                        .copied()
                        .unwrap_or(0)
                        .min(l.count),
                ..l.clone()
            })
            .filter(|l| l.count > 0)
            .collect();
        LineReport {
            lines,
            losses: self.losses.since(&earlier.losses),
        }
    }

    pub fn total(&self) -> u64 {
        self.lines.iter().map(|l| l.count).sum()
    }
}

/// Loaded and attached line counting for one target; dropping it detaches the probe.
pub struct LineCounter<'obj> {
    skel: LinesSkel<'obj>,
    _link: Link,
}

impl<'obj> LineCounter<'obj> {
    pub fn attach(
        target: &Target,
        opts: &LineOptions,
        storage: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<LineCounter<'obj>> {
        requirements::require(target, &["line"])?;
        let mut open = LinesSkelBuilder::default()
            .open(storage)
            .map_err(|e| Error::bpf("opening the BPF object", e))?;
        let ro = open
            .maps
            .rodata_data
            .as_deref_mut()
            .expect("lines.bpf.c has rodata");
        ro.target_tgid = target.pid as u32;
        for (slot, g) in ro.globs.iter_mut().zip(&opts.files) {
            (slot.text, slot.len) = g.to_bpf();
        }
        ro.nr_globs = opts.files.len() as u32;
        if opts.max_lines > 0 {
            open.maps
                .line_counts
                .set_max_entries(opts.max_lines)
                .map_err(|e| Error::bpf("sizing the line table", e))?;
        }
        let skel = open
            .load()
            .map_err(|e| Error::bpf("loading the BPF programs", e))?;
        // On 3.11 the kernel raising this probe's semaphore is what puts the interpreter in
        // tracing mode, where the probe fires; it drops again when the link goes.
        let link = attach::usdt(&skel.progs.on_line, target, "line")?;
        Ok(LineCounter { skel, _link: link })
    }

    /// Reads every counted line (file pointers with the same name merged) and the losses.
    pub fn read(&self) -> Result<LineReport> {
        let mut files: HashMap<u64, LineFile> = HashMap::new();
        let fmap = &self.skel.maps.line_files;
        for key in fmap.keys() {
            if let Ok(Some(v)) = fmap.lookup(&key, MapFlags::ANY) {
                files.insert(u64::from_ne_bytes(key[..8].try_into().unwrap()), record(&v));
            }
        }
        let mut merged: BTreeMap<(String, bool, u32), u64> = BTreeMap::new();
        let cmap = &self.skel.maps.line_counts;
        for key in cmap.keys() {
            let Some(value) = cmap
                .lookup(&key, MapFlags::ANY)
                .map_err(|e| Error::bpf("reading the line table", e))?
            else {
                continue;
            };
            let k: LineKey = record(&key);
            let Some(f) = files.get(&k.file_ptr) else {
                continue;
            };
            let count = u64::from_ne_bytes(value[..8].try_into().unwrap());
            *merged
                .entry((c_string(&f.file), f.file_truncated != 0, k.lineno))
                .or_default() += count;
        }
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref()
            .expect("lines.bpf.c has bss");
        Ok(LineReport {
            lines: merged
                .into_iter()
                .map(|((file, file_truncated, line), count)| LineStats {
                    file,
                    file_truncated,
                    line,
                    count,
                })
                .collect(),
            losses: LineLosses {
                lines_full: bss.line_losses.lines_full,
                table_size: self.skel.maps.line_counts.max_entries(),
                files_full: bss.line_losses.files_full,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(file: &str, line: u32, count: u64) -> LineStats {
        LineStats {
            file: file.into(),
            file_truncated: false,
            line,
            count,
        }
    }

    #[test]
    fn intervals_subtract_the_earlier_reading() {
        let before = LineReport {
            lines: vec![l("/a.py", 3, 10), l("/a.py", 4, 5)],
            ..Default::default()
        };
        let now = LineReport {
            lines: vec![l("/a.py", 3, 25), l("/a.py", 4, 5), l("/b.py", 1, 2)],
            ..Default::default()
        };
        let d = now.since(&before);
        assert_eq!(d.lines, vec![l("/a.py", 3, 15), l("/b.py", 1, 2)]);
        assert_eq!(d.total(), 17);
    }

    #[test]
    fn losses_are_named() {
        assert!(LineLosses::default().lines().is_empty());
        let l = LineLosses {
            lines_full: 4,
            table_size: 10,
            files_full: 0,
        };
        assert_eq!(
            l.lines(),
            ["4 line executions not counted: line table full (10 lines; raise --max-lines)"]
        );
    }
}
