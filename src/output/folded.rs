//! Flame graphs as SVG, drawn by the `inferno` crate from folded stacks (pyflow's, in
//! commands/flow/folded.rs; sampled profiles', in sample/folded.rs).
use std::io::{self, Write};

/// Draws folded lines as an SVG flame graph. With no lines inferno still writes an SVG that
/// says so; that is the answer.
pub fn draw(w: &mut dyn Write, title: &str, count_name: &str, lines: &[String]) -> io::Result<()> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    opts.count_name = count_name.to_string();
    let drawn =
        inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut *w);
    if lines.is_empty() {
        return Ok(());
    }
    drawn.map_err(|e| io::Error::other(e.to_string()))
}
