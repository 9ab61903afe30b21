//! A Python function as every tool names it: file, def line and name (`file:line name`), the
//! one identity that keeps apart the many functions sharing a name in one file.
use crate::abi::c_string;
use crate::abi::types::{FnEntry, TextEncoding};
use crate::escape::escape;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Function {
    /// The kernel's dense number for it, within one session.
    pub id: u32,
    pub file: String,
    /// The def line (`co_firstlineno`); where only the probe's line is known, the line seen at
    /// entry, which CPython may give as -1.
    pub line: i32,
    pub name: String,
    pub name_truncated: bool,
    /// The path lost its beginning (the kernel keeps its end).
    pub file_truncated: bool,
}

impl Function {
    pub fn from_entry(e: &FnEntry) -> Function {
        Function {
            id: e.id,
            file: decode(&e.file, e.file_encoding, e.file_bytes),
            line: e.firstlineno as i32,
            name: decode(&e.name, e.name_encoding, e.name_bytes),
            name_truncated: e.name_truncated != 0,
            file_truncated: e.file_truncated != 0,
        }
    }

    /// `file:line name` as text shows it: marking what the kernel had to cut, and escaped
    /// (the names are the target's, and may hold control sequences).
    pub fn label(&self) -> String {
        format!(
            "{}{}:{} {}{}",
            if self.file_truncated { "..." } else { "" },
            escape(&self.file),
            self.line,
            escape(&self.name),
            if self.name_truncated {
                "...[truncated]"
            } else {
                ""
            }
        )
    }
}

/// Text as the kernel kept it: UTF-8 up to a NUL, or the code units of a non-ASCII str (its
/// first or last `bytes` bytes; a cut code unit at the edge is dropped).
fn decode(chars: &[i8], encoding: u8, bytes: u8) -> String {
    let raw: Vec<u8> = chars
        .iter()
        .take(usize::from(bytes).min(chars.len()))
        .map(|&c| c as u8)
        .collect();
    let units = |size: usize| raw.chunks_exact(size);
    match TextEncoding(encoding.into()) {
        TextEncoding::TEXT_LATIN1 => raw.iter().map(|&b| char::from(b)).collect(),
        TextEncoding::TEXT_UCS2 => {
            let u16s: Vec<u16> = units(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&u16s)
        }
        TextEncoding::TEXT_UCS4 => units(4)
            .map(|c| {
                char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        _ => c_string(chars),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(bytes: &[u8]) -> Vec<i8> {
        let mut v: Vec<i8> = bytes.iter().map(|&b| b as i8).collect();
        v.resize(64, 0);
        v
    }

    #[test]
    fn names_are_decoded_as_the_kernel_kept_them() {
        assert_eq!(decode(&chars(b"fib"), 0, 0), "fib");
        // "größe" as latin-1 code units, "函数" as UCS-2.
        assert_eq!(decode(&chars(b"gr\xf6\xdfe"), 1, 5), "größe");
        assert_eq!(decode(&chars(&[0xfd, 0x51, 0x70, 0x65]), 2, 4), "函数");
        assert_eq!(decode(&chars(&[0x00, 0xf6, 0x01, 0x00]), 4, 4), "\u{1f600}");
    }

    #[test]
    fn labels_mark_what_was_cut() {
        let mut f = Function {
            file: "pkg/app.py".into(),
            line: 12,
            name: "handle".into(),
            ..Default::default()
        };
        assert_eq!(f.label(), "pkg/app.py:12 handle");
        f.file_truncated = true;
        f.name_truncated = true;
        assert_eq!(f.label(), "...pkg/app.py:12 handle...[truncated]");
        f.name = "x\x1b]0;pwned\x07\r\nFAKE".into();
        assert_eq!(
            f.label(),
            "...pkg/app.py:12 x\\x1b]0;pwned\\x07\\x0d\\x0aFAKE...[truncated]"
        );
    }
}
