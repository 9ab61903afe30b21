//! The stack walk's view of the layout table (table.rs), 3.8-3.15: from `_PyRuntime` to the
//! interpreters, their thread states, each thread's frames and the frames' code objects and
//! locals. 3.13+ take every offset the build's own `_Py_DebugOffsets` gives.
use super::{DebugOffsets, Instr, PyVersion, VersionLayout, Walk};
use crate::abi::types::{ObjectLayout, StackLayout};

/// The offsets a stack reader needs, for one version (and on 3.13+ one build): the table's row
/// and its stack walk, with the row's `_PyRuntime` and object offsets that a walk cannot do
/// without taken out of their `Option`s (each field documented in table.rs).
#[derive(Debug, Clone, Copy)]
pub struct InterpreterLayout {
    pub row: VersionLayout,
    pub walk: Walk,
    pub interpreters_head: u64,
    pub interp_modules: u64,
    pub objects: ObjectLayout,
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
        Some(InterpreterLayout {
            row: *self,
            walk: self.walk?,
            interpreters_head: self.interpreters_head?,
            interp_modules: self.interp_modules?,
            objects: self.objects?,
        })
    }
}

impl InterpreterLayout {
    /// The kernel's copy (bpf/sample.bpf.c), for `_PyRuntime` at `runtime_addr`.
    pub fn to_bpf(&self, runtime_addr: u64) -> StackLayout {
        let instr_len = if self.walk.instr == Instr::Pointer {
            8
        } else {
            4
        };
        let mut frame_size = (self.row.frame_code + 8)
            .max(self.walk.frame_previous + 8)
            .max(self.walk.frame_instr + instr_len);
        if let Some(o) = self.row.frame_owner {
            frame_size = frame_size.max(o + 1);
        }
        StackLayout {
            runtime_addr,
            interpreters_head: self.interpreters_head as u32,
            interp_next: self.walk.interp_next as u32,
            interp_threads_head: self.walk.interp_threads_head as u32,
            tstate_next: self.walk.tstate_next as u32,
            tstate_thread_id: self.walk.tstate_thread_id as u32,
            tstate_frame: self.walk.tstate_frame as u32,
            cframe_frame: self.walk.cframe_frame.map_or(-1, |o| o as i32),
            frame_code: self.row.frame_code as u32,
            frame_previous: self.walk.frame_previous as u32,
            frame_instr: self.walk.frame_instr as u32,
            frame_owner: self.row.frame_owner.unwrap_or(0) as u32,
            owner_shim: self.row.owner_shim.map_or(256, u32::from),
            frame_size: frame_size as u32,
            code_tag_mask: self.row.tag_mask,
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
