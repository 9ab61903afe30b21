//! The eval-frame source's views of the layout table (table.rs): the running frame's code
//! object (for function identity), its qualified name, and the objects audit decoding reads.
use super::{DebugOffsets, Gil, PyVersion, VersionLayout};
use crate::abi::types::{EvalLayout, FrameLayout, ObjectLayout, QualnameLayout};

/// How to reach the code object of the frame a function probe fires for, where pyprobe knows
/// it (the caller fills in `runtime_addr`): 3.11, from its own headers
/// (`_PyRuntime.gilstate.tstate_current`, `tstate->cframe`, `cframe->current_frame`,
/// `frame->f_code`, `code->co_firstlineno`); elsewhere a function is (file, name, entry line).
pub fn frame_layout(v: PyVersion) -> Option<FrameLayout> {
    if v.major != 3 || v.minor != 11 {
        return None;
    }
    let t = VersionLayout::of(v)?;
    let w = t.walk?;
    let Gil::RuntimeCurrent(tstate_current) = w.gil else {
        return None;
    };
    Some(FrameLayout {
        tstate_current: tstate_current as u32,
        cframe: w.tstate_frame as u32,
        current_frame: w.cframe_frame? as u32,
        f_code: t.frame_code as u32,
        co_firstlineno: t.code_firstlineno as u32,
        ..Default::default()
    })
}

impl VersionLayout {
    /// Where `_PyEval_EvalFrameDefault`'s frame argument keeps its code object, and the code
    /// and str fields that name it.
    pub fn eval(&self) -> EvalLayout {
        let o = |v: u64| v as u32;
        EvalLayout {
            frame_in_rdi: self.frame_in_rdi.into(),
            f_code: o(self.frame_code),
            code_tag_mask: self.tag_mask,
            owner: o(self.frame_owner.unwrap_or(0)),
            co_flags: o(self.code_flags),
            co_firstlineno: o(self.code_firstlineno),
            co_filename: o(self.code_filename),
            co_name: o(self.code_name),
            str_ascii_data: o(self.str_ascii_data),
            str_compact_data: o(self.str_compact_data),
            type_init: o(self.type_init),
            func_code: o(self.func_code),
            ..Default::default()
        }
    }

    /// Where a code object keeps its qualified name and a str its characters; None before
    /// 3.11, which has none.
    pub fn qualname(&self) -> Option<QualnameLayout> {
        Some(QualnameLayout {
            co_qualname: self.code_qualname? as u32,
            str_ascii_data: self.str_ascii_data as u32,
            str_compact_data: self.str_compact_data as u32,
            ..Default::default()
        })
    }
}

/// The eval-frame layout of a version (3.6-3.15).
pub fn eval_layout(v: PyVersion) -> Option<EvalLayout> {
    VersionLayout::of(v).map(|t| t.eval())
}

/// The eval-frame layout as the build itself describes it (3.13+: its `_Py_DebugOffsets`),
/// which wins over the table for every offset it gives; what the caller set beyond the
/// version's layout (the prologue's `sp_adjust`, the trampoline) is kept.
pub fn eval_layout_of_build(layout: EvalLayout, d: &DebugOffsets) -> EvalLayout {
    let Some(table) = VersionLayout::of(d.version) else {
        return layout;
    };
    EvalLayout {
        sp_adjust: layout.sp_adjust,
        trampoline: layout.trampoline,
        interp_lo: layout.interp_lo,
        interp_hi: layout.interp_hi,
        ..table.with_build(d).eval()
    }
}

/// Where a code object keeps its qualified name (`co_qualname`, 3.11+) and a str its
/// characters; None before 3.11.
pub fn qualname_layout(v: PyVersion) -> Option<QualnameLayout> {
    VersionLayout::of(v)?.qualname()
}

/// The layout for a version, or None where pyprobe has not checked one (event names only).
pub fn object_layout(v: PyVersion) -> Option<ObjectLayout> {
    VersionLayout::of(v)?.objects
}

/// Where a process keeps its loaded modules (`sys.modules`) and how to walk that dict, for the
/// versions whose probes can fail on a file name (3.7-3.11). `struct _is` and the dict structs
/// from the pyenv builds' DWARF (gdb `ptype /o`); Debian's 3.11.2 and bullseye's 3.9.2 were
/// read live with the same offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModulesLayout {
    /// `_PyRuntime.interpreters.head`.
    pub interpreters_head: u64,
    /// `PyInterpreterState.modules`.
    pub interp_modules: u64,
    /// 3.11's dict keys (`dk_log2_size`, `dk_kind`, unicode entries); else 3.6-3.10's
    /// (`dk_size`, entries of hash, key, value).
    pub compact_keys: bool,
    /// `sizeof(PyASCIIObject)` and `sizeof(PyCompactUnicodeObject)`: where a str's characters
    /// begin (3.6-3.11).
    pub str_ascii_data: u64,
    pub str_compact_data: u64,
}

pub fn modules_layout(v: PyVersion) -> Option<ModulesLayout> {
    if v.major != 3 || !(7..=11).contains(&v.minor) {
        return None;
    }
    let t = VersionLayout::of(v)?;
    Some(ModulesLayout {
        interpreters_head: t.interpreters_head?,
        interp_modules: t.interp_modules?,
        compact_keys: v.minor >= 11,
        str_ascii_data: t.str_ascii_data,
        str_compact_data: t.str_compact_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_checked_version_has_its_layout() {
        let l = object_layout(PyVersion::new(3, 11)).unwrap();
        assert_eq!(
            (l.str_ascii_data, l.tuple_items, l.long_tagged),
            (48, 24, 0)
        );
        let l = object_layout(PyVersion::new(3, 13)).unwrap();
        assert_eq!(
            (l.str_ascii_data, l.tuple_items, l.long_tagged),
            (40, 24, 1)
        );
        let l = object_layout(PyVersion::new(3, 14)).unwrap();
        assert_eq!(l.tuple_items, 32);
        assert!(object_layout(PyVersion::new(3, 7)).is_none());
        assert!(object_layout(PyVersion::new(3, 16)).is_none());
    }
}
