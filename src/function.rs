//! A Python function as every tool names it: file, def line and name (`file:line name`), the
//! one identity that keeps apart the many functions sharing a name in one file.
use crate::kernel::c_string;
use crate::kernel::types::FnEntry;

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
            file: c_string(&e.file),
            line: e.firstlineno as i32,
            name: c_string(&e.name),
            name_truncated: e.name_truncated != 0,
            file_truncated: e.file_truncated != 0,
        }
    }

    /// `file:line name`, marking what the kernel had to cut.
    pub fn label(&self) -> String {
        format!(
            "{}{}:{} {}{}",
            if self.file_truncated { "..." } else { "" },
            self.file,
            self.line,
            self.name,
            if self.name_truncated {
                "...[truncated]"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
