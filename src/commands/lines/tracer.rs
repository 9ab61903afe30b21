//! pyprobe lines' kernel side from userspace: loads bpf/lines.bpf.c for one target, attaches
//! it to the line probe, and reads executions per `file:line` out of its maps.
use std::collections::{BTreeMap, HashMap};

use libbpf_rs::{MapCore, MapFlags};

use super::{LineOptions, LineReport, LineStats};
use crate::abi::limits::PATH_SCRATCH;
use crate::abi::skel::lines::{LinesSkel, LinesSkelBuilder};
use crate::abi::types::{LineFile, LineKey};
use crate::abi::{c_string, loss_counters, record, same_struct};
use crate::commands::tools::{self, Needs};
use crate::error::{Error, Result};
use crate::kernel::{Loaded, Probes, globals, load, size};
use crate::output::Never;
use crate::session::Tracer;
use crate::session::probes_in_field;
use crate::target::Target;
use crate::trace::glob;
use crate::trace::losses::{Loss, Losses};

/// Loaded and attached line counting for one target.
pub struct LineCounter {
    skel: Loaded<LinesSkel<'static>>,
    probes: Probes,
}

probes_in_field!(LineCounter);

impl LineCounter {
    pub fn attach(target: &Target, opts: &LineOptions) -> Result<LineCounter> {
        tools::require(target, Needs::Probes(&["line"]))?;
        tools::check_file_names(target, &["line"], opts.force)?;
        let skel = load(LinesSkelBuilder::default(), |open| {
            let ro = globals(open.maps.rodata_data.as_deref_mut());
            let (globs, nr_globs) = glob::table(&opts.files);
            ro.globs = same_struct(&globs);
            ro.nr_globs = nr_globs;
            size(&mut open.maps.line_counts, opts.max_lines, "line table")
        })?;
        let mut probes = skel.probes()?;
        // On 3.11 the kernel raising this probe's semaphore is what puts the interpreter in
        // tracing mode, where the probe fires; it drops again when the link goes.
        probes.usdt(&skel.progs.on_line, target, "line")?;
        Ok(LineCounter { skel, probes })
    }
}

impl Tracer for LineCounter {
    type Event = Never;
    type Report = LineReport;

    /// Every counted line (file pointers with the same name merged) and the losses.
    fn read(&mut self) -> Result<LineReport> {
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
        let bss = globals(self.skel.maps.bss_data.as_deref());
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
            losses: Losses::read(
                &loss_counters(&bss.losses),
                &[
                    (
                        Loss::LinesFull,
                        Some(self.skel.maps.line_counts.max_entries().into()),
                    ),
                    (Loss::FilesFull, None),
                    (Loss::PathsTruncated, Some(PATH_SCRATCH as u64 - 1)),
                ],
            ),
        })
    }
}
