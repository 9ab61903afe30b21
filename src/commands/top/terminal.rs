//! The terminal while top runs: keys read one at a time without echo (raw mode, Ctrl-C still a
//! signal), restored when top ends, also by a panic.
use std::io::Read;

use super::{SortBy, SortKey};
use crate::signals::request_stop;

pub struct Keys {
    saved: Option<libc::termios>,
}

impl Keys {
    /// Switches stdin to raw mode (when it is a terminal) and reads keys in a thread of its own:
    /// `q` quits; `o`, `t`, `n` (or 1, 2, 3) sort by own samples, total samples, name.
    pub fn start(sort: SortKey) -> Keys {
        // SAFETY: tcgetattr writes one termios we own.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        let saved = (unsafe { libc::tcgetattr(0, &mut t) } == 0).then_some(t);
        if let Some(mut raw) = saved {
            raw.c_lflag &= !(libc::ICANON | libc::ECHO);
            raw.c_cc[libc::VMIN] = 1;
            raw.c_cc[libc::VTIME] = 0;
            // SAFETY: sets stdin's attributes from a termios we own.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) };
        }
        std::thread::spawn(move || {
            let mut b = [0u8];
            while let Ok(1) = std::io::stdin().read(&mut b) {
                match b[0] {
                    b'q' | b'Q' => {
                        request_stop();
                        break;
                    }
                    b'o' | b'1' => sort.set(SortBy::Own),
                    b't' | b'2' => sort.set(SortBy::Total),
                    b'n' | b'3' => sort.set(SortBy::Name),
                    _ => {}
                }
            }
        });
        Keys { saved }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // SAFETY: restores stdin's attributes as they were.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}
