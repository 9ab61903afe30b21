//! One escaping of text that comes from a traced process (function and file names, thread and
//! command names, audit arguments) before it reaches a terminal or a line-based format, so that
//! a hostile target cannot write control sequences to root's terminal or forge output lines.
//!
//! What is escaped: C0 controls (ESC, CR, LF, BEL, TAB, ...) and DEL as `\xNN`; C1 controls
//! (U+0080-U+009F, which some terminals take as CSI/OSC), the bidirectional formatting
//! characters (which reorder what is shown: "Trojan Source") and the line and paragraph
//! separators as `\u{NNNN}`; a backslash is doubled so that an escape can never be forged. Every
//! other character of valid UTF-8 is kept as is (a name in Greek or Chinese stays readable);
//! bytes that are not UTF-8 are shown as `\xNN`.
use std::borrow::Cow;
use std::fmt::Write;

/// Characters that are printable but move or reorder text as a terminal or an editor shows
/// it: LRE/RLE/PDF/LRO/RLO, LRI/RLI/FSI/PDI, LRM/RLM/ALM, and the Unicode line separators.
fn reorders(c: char) -> bool {
    matches!(c,
        '\u{200e}' | '\u{200f}' | '\u{061c}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}' | '\u{2029}')
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || reorders(c)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        c if (c as u32) < 0x80 && needs_escape(c) => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `s` safe to print: unchanged (not copied) when it needs nothing.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// A whole line whose parts may be escaped already (an error message that quotes a name
/// `escape_bytes` wrote): its control and reordering characters escaped as `escape` does, its
/// backslashes kept (doubling them would show those parts escaped twice).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\\' && needs_escape(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push(c),
            c => push_escaped(&mut out, c),
        }
    }
    Cow::Owned(out)
}

/// Raw bytes (a `/proc` file, a name read from memory) safe to print: valid UTF-8 as `escape`
/// shows it, every byte that is not part of it as `\xNN`.
pub fn escape_bytes(b: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(b) {
        return escape(s);
    }
    let mut out = String::with_capacity(b.len() + 8);
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c);
        }
        for &x in chunk.invalid() {
            let _ = write!(out, "\\x{x:02x}");
        }
    }
    Cow::Owned(out)
}

/// A frame as folded stacks (flamegraph.pl, inferno) need it: escaped, and without `;`, which
/// separates frames (a newline, which would end the line, is escaped already).
pub fn folded_frame(s: &str) -> String {
    escape(s).replace(';', ":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_kept_without_copying() {
        for s in [
            "fib",
            "Class.method",
            "/usr/lib/python3.11/json/__init__.py",
            "größe",
            "函数",
            "<module>",
            "",
        ] {
            assert!(matches!(escape(s), Cow::Borrowed(x) if x == s), "{s}");
        }
    }

    #[test]
    fn control_characters_are_shown_as_escapes() {
        assert_eq!(
            escape("x\x1b]0;pwned\x07\r\nFAKE LINE"),
            "x\\x1b]0;pwned\\x07\\x0d\\x0aFAKE LINE"
        );
        assert_eq!(escape("a\tb\0c\x7fd"), "a\\x09b\\x00c\\x7fd");
        // C1: CSI (U+009B) and OSC (U+009D) are a terminal's ESC [ and ESC ] in one character.
        assert_eq!(escape("a\u{9b}2Jb\u{9d}"), "a\\u{009b}2Jb\\u{009d}");
    }

    #[test]
    fn reordering_characters_are_shown_as_escapes() {
        assert_eq!(escape("admin\u{202e}gpj.py"), "admin\\u{202e}gpj.py");
        assert_eq!(escape("a\u{2028}b\u{2066}"), "a\\u{2028}b\\u{2066}");
    }

    #[test]
    fn a_backslash_is_doubled_so_no_escape_can_be_forged() {
        assert_eq!(escape("C:\\x1b"), "C:\\\\x1b");
        assert_ne!(escape("\\x1b"), escape("\x1b"));
    }

    #[test]
    fn whole_lines_keep_what_was_escaped_before() {
        let name = escape_bytes(b"/srv/caf\xe9/app.py");
        assert_eq!(name, "/srv/caf\\xe9/app.py");
        let line = format!("refusing {name}:\n\x1b[2J");
        assert_eq!(
            escape_controls(&line),
            "refusing /srv/caf\\xe9/app.py:\\x0a\\x1b[2J"
        );
        assert!(matches!(escape_controls("a\\b"), Cow::Borrowed(_)));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        assert_eq!(escape_bytes(b"caf\xe9\n"), "caf\\xe9\\x0a");
        assert_eq!(escape_bytes("größe\x1b".as_bytes()), "größe\\x1b");
        assert_eq!(escape_bytes(b"\xff\xfe\\"), "\\xff\\xfe\\\\");
        assert!(matches!(escape_bytes(b"ok"), Cow::Borrowed("ok")));
    }

    #[test]
    fn escaped_text_has_no_control_character_left() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let e = escape(&all);
        assert!(!e.chars().any(|c| c.is_control() || reorders(c)), "{e}");
        let bytes: Vec<u8> = (0..=255).collect();
        assert!(!escape_bytes(&bytes).chars().any(|c| c.is_control()));
    }

    #[test]
    fn folded_frames_cannot_split() {
        assert_eq!(folded_frame("a;b\nc 1 (f.py:3)"), "a:b\\x0ac 1 (f.py:3)");
    }
}
