//! Sampled profiles as flame graphs: their stacks weighted by samples, as folded lines or the
//! SVG drawn from them (output/folded.rs).
use std::collections::BTreeMap;
use std::io::{self, Write};

use super::{Profile, frame_label};
use crate::escape::folded_frame;
use crate::output::folded::draw;
use crate::output::{Never, Output, Window};

/// A sampled profile's stacks, outermost frame first, with their sample counts; with
/// `per_thread`, under a root frame per thread.
pub fn profile_lines(p: &Profile, per_thread: bool) -> Vec<String> {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for c in &p.counts {
        let mut path = Vec::new();
        if per_thread {
            path.push(format!("thread {} {}", c.tid, c.thread));
        }
        match &c.stack {
            Some(s) => path.extend(s.frames.iter().rev().map(frame_label)),
            None => path.push("<no Python frame>".into()),
        }
        let path: Vec<String> = path.iter().map(|f| folded_frame(f)).collect();
        *totals.entry(path.join(";")).or_insert(0) += c.count;
    }
    totals
        .into_iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect()
}

/// record as folded stacks or an SVG flame graph.
pub struct FoldedProfile {
    w: Box<dyn Write>,
    per_thread: bool,
    svg_title: Option<String>,
}

impl FoldedProfile {
    pub fn new(w: Box<dyn Write>, per_thread: bool, svg_title: Option<String>) -> FoldedProfile {
        FoldedProfile {
            w,
            per_thread,
            svg_title,
        }
    }
}

impl Output<Never, Profile> for FoldedProfile {
    fn report(&mut self, p: &Profile, _: &Window) -> io::Result<()> {
        let lines = profile_lines(p, self.per_thread);
        match &self.svg_title {
            None => {
                for l in &lines {
                    writeln!(self.w, "{l}")?;
                }
            }
            Some(title) => draw(&mut self.w, title, "samples", &lines)?,
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::tests::profile;

    #[test]
    fn profile_stacks_fold_outermost_first() {
        let lines = profile_lines(&profile(), false);
        assert_eq!(
            lines,
            [
                "<no Python frame> 2",
                "main (/w/app.py:10) 5",
                "main (/w/app.py:10);burn (/w/app.py:5) 30",
                "main (/w/app.py:11);light (/w/app.py:7) 10",
            ]
        );
        let per = profile_lines(&profile(), true);
        assert!(per.contains(&"thread 2 python3;main (/w/app.py:10) 5".to_string()));
    }
}
