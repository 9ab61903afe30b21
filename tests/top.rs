//! pyprobe top in a real terminal (tmux: send-keys and capture-pane) on a busy process: the hot
//! function on top, the sort key changed by a key, `q` ending it; and its periodic tables when
//! standard output is no terminal.
mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A tmux server of this test's own, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let t = Tmux {
            socket: format!("pyprobe-top-test-{}", std::process::id()),
        };
        let ok = t
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "top",
                "-x",
                "160",
                "-y",
                "40",
                command,
            ])
            .success();
        assert!(ok, "tmux new-session");
        t
    }

    fn cmd(&self, args: &[&str]) -> std::process::ExitStatus {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .status()
            .expect("tmux (scripts/test installs it)")
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "top"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (up to 30 s) for the screen to satisfy `cond`; returns it.
    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "never saw {what}:\n{s}");
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", "top"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The first function row of a table (the line after the header).
fn first_row(screen: &str) -> String {
    let mut lines = screen.lines().skip_while(|l| !l.contains("%OWN"));
    lines.next();
    lines.next().unwrap_or_default().to_string()
}

fn busy() -> Guard {
    let mut w = Workload::script("split.py").args(&["60"]).ready();
    w.send_line("go");
    w
}

#[test]
fn the_hot_function_is_on_top_and_keys_work() {
    let mut w = busy();
    let t = Tmux::start(&format!("{} top --pid {}", pyprobe_bin(), w.pid()));
    // Two refreshes: the second covers a whole second of the running workload.
    let s = t.wait_for("two refreshes", |s| s.contains("over 2."));
    assert!(first_row(&s).contains("spin ("), "{s}");
    t.cmd(&["send-keys", "-t", "top", "t"]);
    t.wait_for("sorted by total", |s| s.contains("sorted by total"));
    t.cmd(&["send-keys", "-t", "top", "q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.alive() {
        assert!(Instant::now() < deadline, "q did not end pyprobe top");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(w.alive(), "top ended its target");
}

#[test]
fn without_a_terminal_it_prints_tables() {
    let w = busy();
    let text = Pyprobe::new(&["top", "--pid", &w.pid().to_string(), "-d", "2.5"]).text();
    let tables: Vec<&str> = text.split("pyprobe top: ").skip(1).collect();
    assert!(tables.len() >= 2, "{text}");
    // The last table covers a whole interval of the busy workload.
    assert!(
        first_row(tables[tables.len() - 2]).contains("spin ("),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no terminal escapes in a file:\n{text}"
    );
}
