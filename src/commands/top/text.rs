//! pyprobe top's two views: a screen redrawn in place on a terminal (the alternate screen, left
//! on exit), and a table printed every interval elsewhere.
use std::io::{self, Write};

use super::SortKey;
use crate::output::{Never, Output, Window, clock};
use crate::sample::Profile;
use crate::sample::text::{SortBy, table_lines};

/// The terminal's rows and columns.
fn terminal_size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ writes one winsize we own.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
        (ws.ws_row as usize, ws.ws_col as usize)
    } else {
        (24, 80)
    }
}

fn header(title: &str, window: &Profile, overall: &Profile, sort: SortBy) -> Vec<String> {
    vec![
        title.to_string(),
        format!(
            "{} samples in the last {:.1}s, {} over {:.1}s; sorted by {}",
            window.total_samples(),
            window.elapsed.as_secs_f64(),
            overall.total_samples(),
            overall.elapsed.as_secs_f64(),
            sort.label()
        ),
        "keys: o own, t total, n name, q quit".to_string(),
        String::new(),
    ]
}

pub struct Screen {
    w: Box<dyn Write>,
    title: String,
    sort: SortKey,
    overall: Profile,
    /// The last window drawn, and the order it was drawn in: a key redraws it at once.
    window: Profile,
    drawn_with: SortBy,
    entered: bool,
}

impl Screen {
    pub fn new(w: Box<dyn Write>, title: String, sort: SortKey) -> Screen {
        Screen {
            w,
            title,
            sort,
            overall: Profile::default(),
            window: Profile::default(),
            drawn_with: SortBy::Own,
            entered: false,
        }
    }

    fn draw(&mut self) -> io::Result<()> {
        let sort = self.sort.get();
        self.drawn_with = sort;
        let (rows, cols) = terminal_size();
        let mut lines = header(&self.title, &self.window, &self.overall, sort);
        lines.extend(table_lines(
            &self.window,
            &self.overall,
            sort,
            Some(rows.saturating_sub(6)),
        ));
        write!(self.w, "\x1b[H")?;
        for l in lines.iter().take(rows.saturating_sub(1)) {
            let cut: String = l.chars().take(cols).collect();
            write!(self.w, "{cut}\x1b[K\r\n")?;
        }
        write!(self.w, "\x1b[J")?;
        self.w.flush()
    }

    fn leave(&mut self) -> io::Result<()> {
        if self.entered {
            self.entered = false;
            write!(self.w, "\x1b[?25h\x1b[?1049l")?;
            self.w.flush()?;
        }
        Ok(())
    }
}

impl Output<Never, Profile> for Screen {
    fn start(&mut self) -> io::Result<()> {
        self.entered = true;
        write!(self.w, "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J")?;
        self.w.flush()
    }

    fn report(&mut self, window: &Profile, w: &Window) -> io::Result<()> {
        self.overall.add(window);
        self.window = window.clone();
        if w.last {
            // The last picture stays on the normal screen.
            self.leave()?;
            let sort = self.sort.get();
            let mut lines = header(&self.title, window, &self.overall, sort);
            lines.extend(table_lines(
                window,
                &self.overall,
                sort,
                Some(terminal_size().0),
            ));
            for l in &lines {
                writeln!(self.w, "{l}")?;
            }
            return self.w.flush();
        }
        self.draw()
    }

    /// Called between refreshes: a new sort key shows at once.
    fn flush(&mut self) -> io::Result<()> {
        if self.entered && self.sort.get() != self.drawn_with && self.overall.rate_hz > 0 {
            return self.draw();
        }
        self.w.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

/// Standard output is no terminal: a table every interval.
pub struct Periodic {
    w: Box<dyn Write>,
    title: String,
    sort: SortBy,
    rows: usize,
    overall: Profile,
}

impl Periodic {
    pub fn new(w: Box<dyn Write>, title: String, sort: SortBy, rows: usize) -> Periodic {
        Periodic {
            w,
            title,
            sort,
            rows,
            overall: Profile::default(),
        }
    }
}

impl Output<Never, Profile> for Periodic {
    fn report(&mut self, window: &Profile, w: &Window) -> io::Result<()> {
        self.overall.add(window);
        let mut lines = header(&self.title, window, &self.overall, self.sort);
        lines[0] = format!(
            "{} at {}",
            self.title,
            w.clock.clone().unwrap_or_else(clock)
        );
        lines.remove(2);
        lines.extend(table_lines(
            window,
            &self.overall,
            self.sort,
            Some(self.rows),
        ));
        for l in lines {
            writeln!(self.w, "{l}")?;
        }
        writeln!(self.w)?;
        self.w.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
