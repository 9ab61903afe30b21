//! Where CPython keeps things in memory, per version: the running frame's code object (for
//! function identity) and the objects audit decoding reads. Object layouts were checked by
//! dumping objects of the real interpreter (`ctypes.string_at(id(obj), n)`): Debian's 3.11.2,
//! pyenv's 3.8-3.10 and 3.12, and Debian sid's 3.13, 3.14 and 3.15 (x86-64, default builds).
use super::{DebugOffsets, PyVersion};
use crate::abi::types::{EvalLayout, FrameLayout, ObjectLayout, QualnameLayout};

/// CPython 3.11 (x86_64) from its own headers: `_PyRuntime.gilstate.tstate_current`,
/// `tstate->cframe`, `cframe->current_frame`, `frame->f_code`, `code->co_firstlineno`.
const FRAME_3_11: FrameLayout = FrameLayout {
    runtime_addr: 0,
    tstate_current: 576,
    cframe: 56,
    current_frame: 8,
    f_code: 32,
    co_firstlineno: 72,
    frame_in_rbx: 0,
};

/// How to reach the code object of the frame a function probe fires for, where pyprobe knows
/// it (the caller fills in `runtime_addr`); elsewhere a function is (file, name, entry line).
pub fn frame_layout(v: PyVersion) -> Option<FrameLayout> {
    (v.major == 3 && v.minor == 11).then_some(FRAME_3_11)
}

/// Where `_PyEval_EvalFrameDefault`'s frame argument keeps its code object, per version, and
/// the code and str fields that name it. Checked with gdb on the pyenv builds (DWARF) and by
/// reading live processes of every build here, 3.6 to 3.15 (x86-64, default builds).
pub fn eval_layout(v: PyVersion) -> Option<EvalLayout> {
    if v.major != 3 || !(6..=15).contains(&v.minor) {
        return None;
    }
    let (co_flags, co_firstlineno, co_filename, co_name) = match v.minor {
        6 | 7 => (32, 36, 96, 104),
        8..=10 => (36, 40, 104, 112),
        11 => (48, 72, 112, 120),
        _ => (48, 68, 112, 120),
    };
    Some(EvalLayout {
        // 3.6-3.8: _PyEval_EvalFrameDefault(frame, throwflag); later (tstate, frame, throwflag).
        frame_in_rdi: (v.minor <= 8).into(),
        f_code: if v.minor <= 11 { 32 } else { 0 },
        // 3.14 made the frame's code a _PyStackRef, tagged in its low bits.
        code_tag_mask: if v.minor >= 14 { 3 } else { 0 },
        owner: match v.minor {
            11 => 69,
            12 | 13 => 70,
            14 | 15 => 74,
            _ => 0,
        },
        co_flags,
        co_firstlineno,
        co_filename,
        co_name,
        // 3.12 dropped PyASCIIObject's wstr.
        str_ascii_data: if v.minor <= 11 { 48 } else { 40 },
        str_compact_data: if v.minor <= 11 { 72 } else { 56 },
        sp_adjust: 0,
        // 3.13: PyHeapTypeObject._spec_cache.init, PyFunctionObject.func_code.
        type_init: if v.minor == 13 { 920 } else { 0 },
        func_code: if v.minor == 13 { 48 } else { 0 },
        ..Default::default()
    })
}

/// The eval-frame layout as the build itself describes it (3.13+: its `_Py_DebugOffsets`),
/// which wins over pyprobe's table for every offset it gives.
pub fn eval_layout_of_build(layout: EvalLayout, d: &DebugOffsets) -> EvalLayout {
    let o = |v: u64| v as u32;
    EvalLayout {
        f_code: o(d.interpreter_frame.executable),
        owner: o(d.interpreter_frame.owner),
        co_firstlineno: o(d.code_object.firstlineno),
        co_filename: o(d.code_object.filename),
        co_name: o(d.code_object.name),
        str_ascii_data: o(d.unicode_object.asciiobject_size),
        ..layout
    }
}

/// Where a code object keeps its qualified name (`co_qualname`, 3.11+; checked by reading
/// live processes of Debian's 3.11, pyenv's 3.12 and 3.13 and sid's 3.13-3.15) and a str its
/// characters; None before 3.11, which has none.
pub fn qualname_layout(v: PyVersion) -> Option<QualnameLayout> {
    if v.major != 3 || !(11..=15).contains(&v.minor) {
        return None;
    }
    let e = eval_layout(v)?;
    Some(QualnameLayout {
        co_qualname: 128,
        str_ascii_data: e.str_ascii_data,
        str_compact_data: e.str_compact_data,
        ..Default::default()
    })
}

/// The same as the build itself describes it (3.13+: its `_Py_DebugOffsets`).
pub fn qualname_layout_of_build(layout: QualnameLayout, d: &DebugOffsets) -> QualnameLayout {
    QualnameLayout {
        co_qualname: d.code_object.qualname as u32,
        str_ascii_data: d.unicode_object.asciiobject_size as u32,
        ..layout
    }
}

/// 3.8-3.11: PyASCIIObject is 48 bytes (it still has `wstr`); ints keep sign and digit count
/// in `ob_size`.
const LAYOUT_3_8: ObjectLayout = ObjectLayout {
    known: 1,
    type_name: 24,   // PyTypeObject.tp_name
    type_flags: 168, // PyTypeObject.tp_flags
    tuple_items: 24, // PyTupleObject.ob_item
    list_items: 24,  // PyListObject.ob_item (a pointer to the items)
    str_state: 32,   // PyASCIIObject.state
    str_ascii_data: 48,
    str_utf8_len: 48, // PyCompactUnicodeObject.utf8_length
    str_utf8: 56,     // PyCompactUnicodeObject.utf8 (NULL until someone asked for it)
    bytes_data: 32,   // PyBytesObject.ob_sval
    long_digits: 24,
    long_tagged: 0,
};

/// 3.12-3.13: `wstr` is gone (PyASCIIObject is 40 bytes); ints carry `lv_tag`
/// (digit count << 3 | sign).
const LAYOUT_3_12: ObjectLayout = ObjectLayout {
    str_ascii_data: 40,
    str_utf8_len: 40,
    str_utf8: 48,
    long_tagged: 1,
    ..LAYOUT_3_8
};

/// 3.14+: tuples cache their hash before the items.
const LAYOUT_3_14: ObjectLayout = ObjectLayout {
    tuple_items: 32,
    ..LAYOUT_3_12
};

/// The layout for a version, or None where pyprobe has not checked one (event names only).
pub fn object_layout(v: PyVersion) -> Option<ObjectLayout> {
    if v.major != 3 || v.minor < 8 || v.minor > 15 {
        return None;
    }
    Some(match v.minor {
        8..=11 => LAYOUT_3_8,
        12 | 13 => LAYOUT_3_12,
        _ => LAYOUT_3_14,
    })
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
    if v.major != 3 {
        return None;
    }
    let (interpreters_head, interp_modules) = match v.minor {
        7 => (24, 40),
        8 => (32, 56),
        9 | 10 => (32, 856),
        11 => (40, 888),
        _ => return None,
    };
    Some(ModulesLayout {
        interpreters_head,
        interp_modules,
        compact_keys: v.minor >= 11,
        str_ascii_data: 48,
        str_compact_data: 72,
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
