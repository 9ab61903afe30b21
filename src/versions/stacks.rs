//! Where a thread's Python stack is, per CPython version 3.8-3.15: from `_PyRuntime` to the
//! interpreters, their thread states, each thread's frames and the frames' code objects and
//! locals. 3.13+ take every offset the build's own `_Py_DebugOffsets` gives; 3.8-3.12 come from
//! research/layouts.md (DWARF of the pyenv builds, Debian's headers, checked on live processes).
use super::{DebugOffsets, PyVersion, object_layout};
use crate::abi::types::{ObjectLayout, StackLayout};

/// How a frame says where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instr {
    /// 3.8, 3.9: `f_lasti`, a byte offset into `co_code` (-1 before the first instruction).
    LastiBytes,
    /// 3.10: `f_lasti`, in code units.
    LastiUnits,
    /// 3.11+: a pointer into the code object's inline bytecode (`co_code_adaptive`).
    Pointer,
}

/// How a code object maps instructions to lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTable {
    /// 3.8, 3.9: `co_lnotab`.
    Lnotab,
    /// 3.10: `co_linetable` (PEP 626).
    Pep626,
    /// 3.11+: the location table (PEP 657).
    Locations,
}

/// Where the GIL's holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gil {
    /// <= 3.11: `_PyRuntime.gilstate.tstate_current`, the holder, NULL when none.
    RuntimeCurrent(u64),
    /// 3.12: `interp->ceval.gil`, a pointer to the GIL (`last_holder` at +8, `locked` at +16).
    InterpPointer(u64),
    /// 3.13+: the interpreter's own GIL: its `locked` and `last_holder` fields.
    Embedded { locked: u64, holder: u64 },
}

/// The offsets a stack reader needs, for one version (and on 3.13+ one build).
#[derive(Debug, Clone, Copy)]
pub struct InterpreterLayout {
    pub version: PyVersion,
    /// Taken from the build's `_Py_DebugOffsets`.
    pub from_build: bool,
    pub interpreters_head: u64,
    pub interp_next: u64,
    pub interp_threads_head: u64,
    pub interp_id: u64,
    /// `sys.modules` in the interpreter state (3.8-3.12 read from live processes of pyenv's
    /// and Debian's builds against `id(sys.modules)`).
    pub interp_modules: u64,
    pub gil: Gil,
    pub tstate_next: u64,
    /// `pthread_self()` of the thread (its FS base on x86-64 glibc).
    pub tstate_thread_id: u64,
    /// The kernel's thread id, as seen in the target's pid namespace (3.11+).
    pub tstate_native_thread_id: Option<u64>,
    /// tstate -> current frame, or (3.11, 3.12) -> cframe.
    pub tstate_frame: u64,
    /// 3.11, 3.12: cframe -> current frame.
    pub cframe_frame: Option<u64>,
    pub frame_code: u64,
    pub frame_previous: u64,
    pub frame_instr: u64,
    pub instr: Instr,
    /// 3.11+: the frame's owner byte; owners from `owner_shim` on are shims (3.12+).
    pub frame_owner: Option<u64>,
    pub owner_shim: Option<u8>,
    pub frame_localsplus: u64,
    /// 3.14+: the frame's code and locals are `_PyStackRef`s, tagged in these bits.
    pub tag_mask: u64,
    pub code_name: u64,
    /// 3.11+: `co_qualname` (`Class.method`).
    pub code_qualname: Option<u64>,
    pub code_filename: u64,
    pub code_firstlineno: u64,
    pub code_linetable: u64,
    pub line_table: LineTable,
    /// `co_varnames` (<= 3.10) or `co_localsplusnames` (3.11+).
    pub code_localnames: u64,
    /// 3.11+: `co_localspluskinds` (bytes).
    pub code_localkinds: Option<u64>,
    /// <= 3.10: `co_nlocals`, how many of `f_localsplus` are locals.
    pub code_nlocals: u64,
    /// 3.11+: where the inline bytecode starts in the code object.
    pub code_adaptive: u64,
    pub objects: ObjectLayout,
    /// Where a compact non-ASCII str's characters start (`sizeof(PyCompactUnicodeObject)`).
    pub str_compact_data: u64,
    /// 3.11+: `PyHeapTypeObject.ht_cached_keys`, the keys an instance's attributes share
    /// while it has no dict of its own.
    pub type_cached_keys: u64,
}

impl InterpreterLayout {
    /// The layout of a version, from its build's debug offsets where it has them (3.13+);
    /// None for versions pyprobe does not know (before 3.8, after 3.15, or a 3.13+ build
    /// without readable debug offsets).
    pub fn of(v: PyVersion, build: Option<&DebugOffsets>) -> Option<InterpreterLayout> {
        if v.major != 3 || !(8..=15).contains(&v.minor) {
            return None;
        }
        let objects = object_layout(v)?;
        if v.minor >= 13 {
            return build.map(|d| Self::of_build(v, d, objects));
        }
        let m = v.minor;
        let old = m <= 10;
        Some(InterpreterLayout {
            version: v,
            from_build: false,
            interpreters_head: if m <= 10 { 32 } else { 40 },
            interp_next: 0,
            interp_threads_head: match m {
                8..=10 => 8,
                11 => 16,
                _ => 72,
            },
            interp_id: match m {
                8 => 16,
                9 | 10 => 24,
                11 => 48,
                _ => 8,
            },
            interp_modules: match m {
                8 => 56,
                9 | 10 => 856,
                11 => 888,
                _ => 944,
            },
            gil: match m {
                8 => Gil::RuntimeCurrent(1368),
                9 | 10 => Gil::RuntimeCurrent(568),
                11 => Gil::RuntimeCurrent(576),
                _ => Gil::InterpPointer(384),
            },
            tstate_next: 8,
            tstate_thread_id: match m {
                8..=10 => 176,
                11 => 152,
                _ => 136,
            },
            tstate_native_thread_id: match m {
                11 => Some(160),
                12 => Some(144),
                _ => None,
            },
            tstate_frame: if old { 24 } else { 56 },
            cframe_frame: match m {
                11 => Some(8),
                12 => Some(0),
                _ => None,
            },
            frame_code: if m <= 11 { 32 } else { 0 },
            frame_previous: match m {
                8..=10 => 24,
                11 => 48,
                _ => 8,
            },
            frame_instr: match m {
                8 | 9 => 104,
                10 => 96,
                _ => 56,
            },
            instr: match m {
                8 | 9 => Instr::LastiBytes,
                10 => Instr::LastiUnits,
                _ => Instr::Pointer,
            },
            frame_owner: match m {
                11 => Some(69),
                12 => Some(70),
                _ => None,
            },
            // 3.12's C-stack entry frames (FRAME_OWNED_BY_CSTACK); 3.11 has none.
            owner_shim: (m == 12).then_some(3),
            frame_localsplus: match m {
                8 | 9 => 360,
                10 => 352,
                _ => 72,
            },
            tag_mask: 0,
            code_name: if old { 112 } else { 120 },
            code_qualname: (!old).then_some(128),
            code_filename: if old { 104 } else { 112 },
            code_firstlineno: match m {
                8..=10 => 40,
                11 => 72,
                _ => 68,
            },
            code_linetable: if old { 120 } else { 136 },
            line_table: match m {
                8 | 9 => LineTable::Lnotab,
                10 => LineTable::Pep626,
                _ => LineTable::Locations,
            },
            code_localnames: if old { 72 } else { 96 },
            code_localkinds: (!old).then_some(104),
            code_nlocals: if old { 28 } else { 80 },
            code_adaptive: match m {
                11 => 184,
                12 => 192,
                _ => 0,
            },
            objects,
            str_compact_data: if m <= 11 { 72 } else { 56 },
            // Found in live processes of each build (the type's pointer to keys holding
            // '_name'), pyenv's and Debian's alike.
            type_cached_keys: match m {
                8..=10 => 0,
                11 => 872,
                _ => 880,
            },
        })
    }

    fn of_build(v: PyVersion, d: &DebugOffsets, objects: ObjectLayout) -> InterpreterLayout {
        let f = &d.interpreter_frame;
        let c = &d.code_object;
        InterpreterLayout {
            version: v,
            from_build: true,
            interpreters_head: d.runtime_state.interpreters_head,
            interp_next: d.interpreter_state.next,
            interp_threads_head: d.interpreter_state.threads_head,
            interp_id: d.interpreter_state.id,
            interp_modules: d.interpreter_state.imports_modules,
            gil: Gil::Embedded {
                locked: d.interpreter_state.gil_locked,
                holder: d.interpreter_state.gil_holder,
            },
            tstate_next: d.thread_state.next,
            tstate_thread_id: d.thread_state.thread_id,
            tstate_native_thread_id: Some(d.thread_state.native_thread_id),
            tstate_frame: d.thread_state.current_frame,
            cframe_frame: None,
            frame_code: f.executable,
            frame_previous: f.previous,
            frame_instr: f.instr_ptr,
            instr: Instr::Pointer,
            frame_owner: Some(f.owner),
            // 3.13: FRAME_OWNED_BY_CSTACK (3); 3.14+: FRAME_OWNED_BY_INTERPRETER (3) and, on
            // 3.14, CSTACK (4).
            owner_shim: Some(3),
            frame_localsplus: f.localsplus,
            tag_mask: if v.minor >= 14 { 3 } else { 0 },
            code_name: c.name,
            code_qualname: Some(c.qualname),
            code_filename: c.filename,
            code_firstlineno: c.firstlineno,
            code_linetable: c.linetable,
            line_table: LineTable::Locations,
            code_localnames: c.localsplusnames,
            code_localkinds: Some(c.localspluskinds),
            code_nlocals: 80,
            code_adaptive: c.co_code_adaptive,
            objects: ObjectLayout {
                str_ascii_data: d.unicode_object.asciiobject_size as u32,
                ..objects
            },
            str_compact_data: d.unicode_object.asciiobject_size + 16,
            // Not among the debug offsets: read from live sid 3.13-3.15 and pyenv 3.13.0
            // processes as for 3.11 and 3.12.
            type_cached_keys: if v.minor >= 15 { 888 } else { 880 },
        }
    }

    /// The kernel's copy (bpf/sample.bpf.c), for `_PyRuntime` at `runtime_addr`.
    pub fn to_bpf(&self, runtime_addr: u64) -> StackLayout {
        let instr_len = if self.instr == Instr::Pointer { 8 } else { 4 };
        let mut frame_size = (self.frame_code + 8)
            .max(self.frame_previous + 8)
            .max(self.frame_instr + instr_len);
        if let Some(o) = self.frame_owner {
            frame_size = frame_size.max(o + 1);
        }
        StackLayout {
            runtime_addr,
            interpreters_head: self.interpreters_head as u32,
            interp_next: self.interp_next as u32,
            interp_threads_head: self.interp_threads_head as u32,
            tstate_next: self.tstate_next as u32,
            tstate_thread_id: self.tstate_thread_id as u32,
            tstate_frame: self.tstate_frame as u32,
            cframe_frame: self.cframe_frame.map_or(-1, |o| o as i32),
            frame_code: self.frame_code as u32,
            frame_previous: self.frame_previous as u32,
            frame_instr: self.frame_instr as u32,
            frame_owner: self.frame_owner.unwrap_or(0) as u32,
            owner_shim: self.owner_shim.map_or(256, u32::from),
            frame_size: frame_size as u32,
            code_tag_mask: self.tag_mask,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_before_3_13_has_its_table() {
        for m in 8..=12 {
            assert!(
                InterpreterLayout::of(PyVersion::new(3, m), None).is_some(),
                "3.{m}"
            );
        }
        assert!(InterpreterLayout::of(PyVersion::new(3, 7), None).is_none());
        assert!(InterpreterLayout::of(PyVersion::new(3, 13), None).is_none());
        assert!(InterpreterLayout::of(PyVersion::new(3, 16), None).is_none());
    }

    #[test]
    fn the_kernel_reads_the_frame_fields_in_one_piece() {
        let l = InterpreterLayout::of(PyVersion::new(3, 11), None).unwrap();
        let k = l.to_bpf(0x1000);
        assert_eq!((k.tstate_frame, k.cframe_frame, k.frame_code), (56, 8, 32));
        assert_eq!(
            (k.frame_previous, k.frame_owner, k.frame_size),
            (48, 69, 70)
        );
        assert_eq!(k.owner_shim, 256, "3.11 has no shim frames");
        let l = InterpreterLayout::of(PyVersion::new(3, 9), None).unwrap();
        let k = l.to_bpf(0);
        assert_eq!(
            (k.frame_instr, k.frame_size, k.cframe_frame),
            (104, 108, -1)
        );
        let k = InterpreterLayout::of(PyVersion::new(3, 12), None)
            .unwrap()
            .to_bpf(0);
        assert_eq!((k.cframe_frame, k.owner_shim, k.frame_size), (0, 3, 71));
    }
}
