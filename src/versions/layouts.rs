//! The eval-frame source's views of the layout table (table.rs): the running frame's code
//! object (for function identity), its qualified name, and the objects audit decoding reads;
//! and where each version keeps the exception being raised (`pyprobe exceptions`).
use super::{DebugOffsets, Gil, PyVersion, VersionLayout};
use crate::abi::types::{EvalLayout, ExcLayout, FrameLayout, ObjectLayout, QualnameLayout};

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

/// Where a dict's entries are, read from the first 40 bytes of its keys object
/// (`PyDictKeysObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictEntries {
    /// The first entry's address.
    pub at: u64,
    /// `dk_nentries`: how many entries are in use (deleted ones included).
    pub count: u64,
    /// An entry's size, and where its key is in it (its value follows).
    pub size: u64,
    pub key_at: u64,
}

impl DictEntries {
    /// From the header of the keys object at `keys`: 3.11+'s compact keys (`dk_log2_size`,
    /// `dk_log2_index_bytes`, `dk_kind` (0: any keys; else str keys, in entries of key and
    /// value), `dk_nentries`; the indices, then the entries) or 3.6-3.10's (`dk_size`, then
    /// `dk_nentries`; indices of 1-8 bytes each by the size; entries of hash, key, value).
    /// None for a header too short or a size no dict has.
    pub fn of(keys: u64, header: &[u8], compact_keys: bool) -> Option<DictEntries> {
        let word = |at: usize| Some(u64::from_le_bytes(header.get(at..at + 8)?.try_into().ok()?));
        if compact_keys {
            let log2_index_bytes = u32::from(*header.get(9)?);
            if log2_index_bytes > 40 {
                return None;
            }
            let unicode = *header.get(10)? != 0;
            let (size, key_at) = if unicode { (16, 0) } else { (24, 8) };
            return Some(DictEntries {
                at: keys.checked_add(32 + (1u64 << log2_index_bytes))?,
                count: word(24)?,
                size,
                key_at,
            });
        }
        let size = word(8)?;
        let index_bytes = match size {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xffff_ffff => 4,
            _ => 8,
        };
        Some(DictEntries {
            at: keys
                .checked_add(40)?
                .checked_add(size.checked_mul(index_bytes)?)?,
            count: word(32)?,
            size: 24,
            key_at: 8,
        })
    }

    /// How many bytes the first `limit` entries at most take.
    pub fn len(&self, limit: u64) -> u64 {
        self.count.min(limit) * self.size
    }

    /// The (key, value) of each entry read (`len`'s bytes from `at`), empty and deleted ones
    /// included.
    pub fn pairs(&self, raw: &[u8]) -> Vec<(u64, u64)> {
        let at = |e: &[u8], o: u64| {
            let o = o as usize;
            u64::from_le_bytes(e[o..o + 8].try_into().expect("8 bytes"))
        };
        raw.chunks_exact(self.size as usize)
            .map(|e| (at(e, self.key_at), at(e, self.key_at + 8)))
            .collect()
    }
}

/// Where the raised exception is, per minor version: PyThreadState's curexc_type (<= 3.11) or
/// current_exception (3.12+), from each version's headers (3.8-3.13, offsetof) and measured in
/// sid's 3.14 and 3.15 builds (gdb at PyTraceBack_Here: the word whose type is the raised one).
pub fn exc_layout(minor: u32) -> Option<ExcLayout> {
    let (tstate_exc, exc_traceback, frame_object_frame) = match minor {
        8..=10 => (88, 0, 0),
        11 => (96, 0, 24),
        12 => (96, 40, 24),
        13 | 14 => (112, 40, 24),
        15 => (136, 40, 24),
        _ => return None,
    };
    Some(ExcLayout {
        tstate_exc,
        exc_traceback,
        frame_object_frame,
        tb_frame: 24,
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

    #[test]
    fn a_dict_s_entries_are_found_from_its_keys_header() {
        let found = |d: &DictEntries| (d.at, d.count, d.size, d.key_at);
        let mut h = [0u8; 40];
        // 3.11+: 2^3 bytes of indices, str keys, 5 entries.
        h[9] = 3;
        h[10] = 1;
        h[24] = 5;
        let d = DictEntries::of(0x1000, &h, true).unwrap();
        assert_eq!(found(&d), (0x1000 + 32 + 8, 5, 16, 0));
        assert_eq!(d.len(3), 48);
        // 3.6-3.10: dk_size 8 (one byte an index), 2 entries of hash, key, value.
        let mut h = [0u8; 40];
        h[8] = 8;
        h[32] = 2;
        let d = DictEntries::of(0x1000, &h, false).unwrap();
        assert_eq!(found(&d), (0x1000 + 40 + 8, 2, 24, 8));
        let raw: Vec<u8> = [1u64, 2, 3, 4, 5, 6]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(d.pairs(&raw), [(2, 3), (5, 6)]);
        h[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            DictEntries::of(0x1000, &h, false),
            None,
            "a size no dict has"
        );
        assert_eq!(
            DictEntries::of(0x1000, &h[..20], true),
            None,
            "a short header"
        );
    }

    #[test]
    fn every_version_3_8_to_3_15_says_where_the_raised_exception_is() {
        for minor in 8..=15 {
            let l = exc_layout(minor).unwrap();
            assert_eq!(l.tb_frame, 24);
            // The instance keeps its traceback from 3.12 on; before, the thread state does.
            assert_eq!(l.exc_traceback != 0, minor >= 12);
            assert_eq!(l.frame_object_frame != 0, minor >= 11);
        }
        assert!(exc_layout(7).is_none());
        assert!(exc_layout(16).is_none());
    }
}
