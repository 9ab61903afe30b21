//! The stack walk's view of the layout table (table.rs), 3.8-3.15: from `_PyRuntime` to the
//! interpreters, their thread states, each thread's frames and the frames' code objects and
//! locals. 3.13+ take every offset the build's own `_Py_DebugOffsets` gives.
use super::{DebugOffsets, Gil, Instr, LineTable, PyVersion, VersionLayout};
use crate::abi::types::{ObjectLayout, StackLayout};

/// The offsets a stack reader needs, for one version (and on 3.13+ one build): the table's row
/// (`VersionLayout`) and its stack walk (`Walk`) in one struct, each field documented there;
/// `objects` is the row's object layout, present on every version a walk is known for.
#[derive(Debug, Clone, Copy)]
pub struct InterpreterLayout {
    pub version: PyVersion,
    pub from_build: bool,
    pub interpreters_head: u64,
    pub interp_next: u64,
    pub interp_threads_head: u64,
    pub interp_id: u64,
    pub interp_modules: u64,
    pub gil: Gil,
    pub tstate_next: u64,
    pub tstate_thread_id: u64,
    pub tstate_native_thread_id: Option<u64>,
    pub tstate_frame: u64,
    pub cframe_frame: Option<u64>,
    pub frame_code: u64,
    pub frame_previous: u64,
    pub frame_instr: u64,
    pub instr: Instr,
    pub frame_owner: Option<u64>,
    pub owner_shim: Option<u8>,
    pub frame_localsplus: u64,
    pub tag_mask: u64,
    pub code_name: u64,
    pub code_qualname: Option<u64>,
    pub code_filename: u64,
    pub code_firstlineno: u64,
    pub code_linetable: u64,
    pub line_table: LineTable,
    pub code_localnames: u64,
    pub code_localkinds: Option<u64>,
    pub code_nlocals: u64,
    pub code_adaptive: u64,
    pub objects: ObjectLayout,
    pub str_compact_data: u64,
    pub type_cached_keys: u64,
}

impl InterpreterLayout {
    /// The layout of a version, from its build's debug offsets where it has them (3.13+);
    /// None for versions pyprobe does not know (before 3.8, after 3.15, or a 3.13+ build
    /// without readable debug offsets).
    pub fn of(v: PyVersion, build: Option<&DebugOffsets>) -> Option<InterpreterLayout> {
        let mut table = VersionLayout::of(v)?;
        if v.minor >= 13 {
            table = table.with_build(build?);
        }
        table.interpreter()
    }
}

impl VersionLayout {
    /// The stack walk's view, where the row (or its build) has one.
    pub fn interpreter(&self) -> Option<InterpreterLayout> {
        let w = self.walk?;
        Some(InterpreterLayout {
            version: self.version,
            from_build: self.from_build,
            interpreters_head: self.interpreters_head?,
            interp_next: w.interp_next,
            interp_threads_head: w.interp_threads_head,
            interp_id: w.interp_id,
            interp_modules: self.interp_modules?,
            gil: w.gil,
            tstate_next: w.tstate_next,
            tstate_thread_id: w.tstate_thread_id,
            tstate_native_thread_id: w.tstate_native_thread_id,
            tstate_frame: w.tstate_frame,
            cframe_frame: w.cframe_frame,
            frame_code: self.frame_code,
            frame_previous: w.frame_previous,
            frame_instr: w.frame_instr,
            instr: w.instr,
            frame_owner: self.frame_owner,
            owner_shim: self.owner_shim,
            frame_localsplus: w.frame_localsplus,
            tag_mask: self.tag_mask,
            code_name: self.code_name,
            code_qualname: self.code_qualname,
            code_filename: self.code_filename,
            code_firstlineno: self.code_firstlineno,
            code_linetable: w.code_linetable,
            line_table: w.line_table,
            code_localnames: w.code_localnames,
            code_localkinds: w.code_localkinds,
            code_nlocals: w.code_nlocals,
            code_adaptive: w.code_adaptive,
            objects: self.objects?,
            str_compact_data: self.str_compact_data,
            type_cached_keys: self.type_cached_keys,
        })
    }
}

impl InterpreterLayout {
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
