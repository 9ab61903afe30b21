//! record in speedscope's file format (https://www.speedscope.app/file-format-schema.json):
//! shared frames, and one sampled profile, merged or per thread, each stack listed from its
//! outermost frame and weighted by its samples' time in seconds.
use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::output::{Never, Output, Window};
use crate::sample::Profile;

pub struct Speedscope {
    w: Box<dyn Write>,
    per_thread: bool,
    name: String,
}

impl Speedscope {
    pub fn new(w: Box<dyn Write>, per_thread: bool, name: String) -> Speedscope {
        Speedscope {
            w,
            per_thread,
            name,
        }
    }
}

/// The document for a profile.
pub fn document(p: &Profile, per_thread: bool, name: &str) -> Value {
    let mut frames: Vec<Value> = Vec::new();
    let mut index: HashMap<(String, String, i32), usize> = HashMap::new();
    let mut frame_of = |name: &str, file: &str, line: i32| -> usize {
        *index
            .entry((name.to_string(), file.to_string(), line))
            .or_insert_with(|| {
                frames.push(if file.is_empty() {
                    json!({"name": name})
                } else {
                    json!({"name": name, "file": file, "line": line})
                });
                frames.len() - 1
            })
    };
    let period = 1.0 / f64::from(p.rate_hz.max(1));
    // Profiles in thread order; one named after the process when merged.
    let mut profiles: Vec<(String, Vec<Vec<usize>>, Vec<f64>)> = Vec::new();
    let mut counts: Vec<_> = p.counts.iter().collect();
    counts.sort_by_key(|c| c.tid);
    for c in counts {
        let key = if per_thread {
            format!("thread {} {}", c.tid, c.thread)
        } else {
            name.to_string()
        };
        if profiles.last().is_none_or(|(k, _, _)| *k != key) {
            profiles.push((key, Vec::new(), Vec::new()));
        }
        let stack: Vec<usize> = match &c.stack {
            Some(s) => s
                .frames
                .iter()
                .rev()
                .map(|f| frame_of(&f.name, &f.file, f.line))
                .collect(),
            None => vec![frame_of("<no Python frame>", "", 0)],
        };
        let (_, samples, weights) = profiles.last_mut().expect("pushed above");
        samples.push(stack);
        weights.push(c.count as f64 * period);
    }
    let profiles: Vec<Value> = profiles
        .into_iter()
        .map(|(name, samples, weights)| {
            let end: f64 = weights.iter().sum();
            json!({
                "type": "sampled",
                "name": name,
                "unit": "seconds",
                "startValue": 0.0,
                "endValue": end,
                "samples": samples,
                "weights": weights,
            })
        })
        .collect();
    json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": name,
        "activeProfileIndex": 0,
        "exporter": concat!("pyprobe ", env!("CARGO_PKG_VERSION")),
        "shared": {"frames": frames},
        "profiles": profiles,
    })
}

impl Output<Never, Profile> for Speedscope {
    fn report(&mut self, p: &Profile, _: &Window) -> io::Result<()> {
        writeln!(self.w, "{}", document(p, self.per_thread, &self.name))
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
    fn stacks_index_shared_frames_from_the_root() {
        let d = document(&profile(), false, "p");
        let frames = d["shared"]["frames"].as_array().unwrap();
        let p = &d["profiles"][0];
        assert_eq!(d["profiles"].as_array().unwrap().len(), 1);
        let first: Vec<usize> = p["samples"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(frames[first[0]]["name"], "main");
        assert_eq!(frames[first[1]]["name"], "burn");
        assert!((p["weights"][0].as_f64().unwrap() - 0.30).abs() < 1e-9);
        assert!((p["endValue"].as_f64().unwrap() - 0.47).abs() < 1e-9);
        let per = document(&profile(), true, "p");
        assert_eq!(per["profiles"].as_array().unwrap().len(), 3);
    }
}
