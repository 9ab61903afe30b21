//! One table of where CPython keeps what pyprobe reads, a row per version 3.6-3.15, each row
//! saying what changed since the one before; `with_build` lays a 3.13+ build's own
//! `_Py_DebugOffsets` over its row. The eval-frame source's layouts (layouts.rs), the stack
//! walk's (interpreter.rs) and `sys.modules`' all derive from it. Checked with gdb on the pyenv
//! builds (DWARF), Debian's headers, and by reading live processes of every build here
//! (x86-64, default builds).
use super::{DebugOffsets, PyVersion};
use crate::abi::types::ObjectLayout;

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

/// One version's layout (and, after `with_build`, one build's). Offsets in bytes.
#[derive(Debug, Clone, Copy)]
pub struct VersionLayout {
    pub version: PyVersion,
    /// Taken from the build's `_Py_DebugOffsets`.
    pub from_build: bool,
    /// `_PyEval_EvalFrameDefault(frame, throwflag)` (3.6-3.8): the frame in rdi; later
    /// `(tstate, frame, throwflag)`: in rsi.
    pub frame_in_rdi: bool,
    /// The frame's code object (`f_code`; 3.13+ `f_executable`).
    pub frame_code: u64,
    /// 3.14+: the frame's code and locals are `_PyStackRef`s, tagged in these bits.
    pub tag_mask: u64,
    /// 3.11+: the frame's owner byte (0: the thread's, 1: a generator's); owners from
    /// `owner_shim` on are shims (3.12+: 3.12's and 3.13's FRAME_OWNED_BY_CSTACK, 3.14+'s
    /// FRAME_OWNED_BY_INTERPRETER and, on 3.14, CSTACK at 4).
    pub frame_owner: Option<u64>,
    pub owner_shim: Option<u8>,
    pub code_flags: u64,
    pub code_firstlineno: u64,
    pub code_filename: u64,
    pub code_name: u64,
    /// 3.11+: `co_qualname` (`Class.method`).
    pub code_qualname: Option<u64>,
    /// `sizeof(PyASCIIObject)` and `sizeof(PyCompactUnicodeObject)`: where a compact ASCII
    /// str's characters start, and any other compact str's (3.12 dropped `wstr`).
    pub str_ascii_data: u64,
    pub str_compact_data: u64,
    /// 3.13's CALL_ALLOC_AND_ENTER_INIT: `PyHeapTypeObject._spec_cache.init` and
    /// `PyFunctionObject.func_code`; 0 elsewhere.
    pub type_init: u64,
    pub func_code: u64,
    /// 3.11+: `PyHeapTypeObject.ht_cached_keys`, the keys an instance's attributes share while
    /// it has no dict of its own (found in live processes of each build: the type's pointer to
    /// keys holding '_name'; not among the debug offsets); 0 before.
    pub type_cached_keys: u64,
    /// The objects audit decoding and locals read (3.8+).
    pub objects: Option<ObjectLayout>,
    /// `_PyRuntime.interpreters.head` and `PyInterpreterState.modules` (`sys.modules`, read
    /// from live processes of pyenv's and Debian's builds against `id(sys.modules)`): 3.7-3.12;
    /// 3.13+ from the build.
    pub interpreters_head: Option<u64>,
    pub interp_modules: Option<u64>,
    /// What only the stack walk reads: 3.8-3.12 from the table, 3.13+ from the build.
    pub walk: Option<Walk>,
}

/// The offsets only a stack walk needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    pub interp_next: u64,
    pub interp_threads_head: u64,
    pub interp_id: u64,
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
    pub frame_previous: u64,
    pub frame_instr: u64,
    pub instr: Instr,
    pub frame_localsplus: u64,
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
}

/// 3.8-3.11: PyASCIIObject is 48 bytes (it still has `wstr`); ints keep sign and digit count
/// in `ob_size`. Checked by dumping objects of the real interpreter
/// (`ctypes.string_at(id(obj), n)`): Debian's 3.11.2, pyenv's 3.8-3.10 and 3.12, and Debian
/// sid's 3.13, 3.14 and 3.15.
const OBJECTS_3_8: ObjectLayout = ObjectLayout {
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
const OBJECTS_3_12: ObjectLayout = ObjectLayout {
    str_ascii_data: 40,
    str_utf8_len: 40,
    str_utf8: 48,
    long_tagged: 1,
    ..OBJECTS_3_8
};

/// 3.14+: tuples cache their hash before the items.
const OBJECTS_3_14: ObjectLayout = ObjectLayout {
    tuple_items: 32,
    ..OBJECTS_3_12
};

const V3_6: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 6),
    from_build: false,
    frame_in_rdi: true,
    frame_code: 32,
    tag_mask: 0,
    frame_owner: None,
    owner_shim: None,
    code_flags: 32,
    code_firstlineno: 36,
    code_filename: 96,
    code_name: 104,
    code_qualname: None,
    str_ascii_data: 48,
    str_compact_data: 72,
    type_init: 0,
    func_code: 0,
    type_cached_keys: 0,
    objects: None,
    interpreters_head: None,
    interp_modules: None,
    walk: None,
};

const V3_7: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 7),
    interpreters_head: Some(24),
    interp_modules: Some(40),
    ..V3_6
};

const WALK_3_8: Walk = Walk {
    interp_next: 0,
    interp_threads_head: 8,
    interp_id: 16,
    gil: Gil::RuntimeCurrent(1368),
    tstate_next: 8,
    tstate_thread_id: 176,
    tstate_native_thread_id: None,
    tstate_frame: 24,
    cframe_frame: None,
    frame_previous: 24,
    frame_instr: 104,
    instr: Instr::LastiBytes,
    frame_localsplus: 360,
    code_linetable: 120,
    line_table: LineTable::Lnotab,
    code_localnames: 72,
    code_localkinds: None,
    code_nlocals: 28,
    code_adaptive: 0,
};

const V3_8: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 8),
    code_flags: 36,
    code_firstlineno: 40,
    code_filename: 104,
    code_name: 112,
    objects: Some(OBJECTS_3_8),
    interpreters_head: Some(32),
    interp_modules: Some(56),
    walk: Some(WALK_3_8),
    ..V3_7
};

const V3_9: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 9),
    frame_in_rdi: false,
    interp_modules: Some(856),
    walk: Some(WALK_3_9),
    ..V3_8
};

const WALK_3_9: Walk = Walk {
    interp_id: 24,
    gil: Gil::RuntimeCurrent(568),
    ..WALK_3_8
};

const WALK_3_10: Walk = Walk {
    frame_instr: 96,
    instr: Instr::LastiUnits,
    frame_localsplus: 352,
    line_table: LineTable::Pep626,
    ..WALK_3_9
};

const V3_10: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 10),
    walk: Some(WALK_3_10),
    ..V3_9
};

const WALK_3_11: Walk = Walk {
    interp_threads_head: 16,
    interp_id: 48,
    gil: Gil::RuntimeCurrent(576),
    tstate_thread_id: 152,
    tstate_native_thread_id: Some(160),
    tstate_frame: 56,
    cframe_frame: Some(8),
    frame_previous: 48,
    frame_instr: 56,
    instr: Instr::Pointer,
    frame_localsplus: 72,
    code_linetable: 136,
    line_table: LineTable::Locations,
    code_localnames: 96,
    code_localkinds: Some(104),
    code_nlocals: 80,
    code_adaptive: 184,
    ..WALK_3_10
};

const V3_11: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 11),
    frame_owner: Some(69),
    code_flags: 48,
    code_firstlineno: 72,
    code_filename: 112,
    code_name: 120,
    code_qualname: Some(128),
    type_cached_keys: 872,
    interpreters_head: Some(40),
    interp_modules: Some(888),
    walk: Some(WALK_3_11),
    ..V3_10
};

const V3_12: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 12),
    frame_code: 0,
    frame_owner: Some(70),
    // 3.12's C-stack entry frames (FRAME_OWNED_BY_CSTACK); 3.11 has none.
    owner_shim: Some(3),
    code_firstlineno: 68,
    str_ascii_data: 40,
    str_compact_data: 56,
    objects: Some(OBJECTS_3_12),
    type_cached_keys: 880,
    interp_modules: Some(944),
    walk: Some(Walk {
        interp_threads_head: 72,
        interp_id: 8,
        gil: Gil::InterpPointer(384),
        tstate_thread_id: 136,
        tstate_native_thread_id: Some(144),
        cframe_frame: Some(0),
        frame_previous: 8,
        code_adaptive: 192,
        ..WALK_3_11
    }),
    ..V3_11
};

/// 3.13+ publish the rest in `_Py_DebugOffsets` (`with_build`).
const V3_13: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 13),
    type_init: 920,
    func_code: 48,
    interpreters_head: None,
    interp_modules: None,
    walk: None,
    ..V3_12
};

const V3_14: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 14),
    tag_mask: 3,
    frame_owner: Some(74),
    objects: Some(OBJECTS_3_14),
    type_init: 0,
    func_code: 0,
    ..V3_13
};

const V3_15: VersionLayout = VersionLayout {
    version: PyVersion::new(3, 15),
    type_cached_keys: 888,
    ..V3_14
};

/// The rows, oldest first.
const TABLE: [VersionLayout; 10] = [
    V3_6, V3_7, V3_8, V3_9, V3_10, V3_11, V3_12, V3_13, V3_14, V3_15,
];

impl VersionLayout {
    /// The row of a version (its micro release kept), None outside 3.6-3.15.
    pub fn of(v: PyVersion) -> Option<VersionLayout> {
        let row = TABLE
            .iter()
            .find(|row| (row.version.major, row.version.minor) == (v.major, v.minor))?;
        Some(VersionLayout { version: v, ..*row })
    }

    /// The row with every offset the build's own `_Py_DebugOffsets` gives taken from it.
    pub fn with_build(self, d: &DebugOffsets) -> VersionLayout {
        let (i, t, f, c) = (
            &d.interpreter_state,
            &d.thread_state,
            &d.interpreter_frame,
            &d.code_object,
        );
        let ascii = d.unicode_object.asciiobject_size;
        VersionLayout {
            from_build: true,
            frame_code: f.executable,
            frame_owner: Some(f.owner),
            code_firstlineno: c.firstlineno,
            code_filename: c.filename,
            code_name: c.name,
            code_qualname: Some(c.qualname),
            str_ascii_data: ascii,
            str_compact_data: ascii + 16,
            objects: self.objects.map(|o| ObjectLayout {
                str_ascii_data: ascii as u32,
                ..o
            }),
            interpreters_head: Some(d.runtime_state.interpreters_head),
            interp_modules: Some(i.imports_modules),
            walk: Some(Walk {
                interp_next: i.next,
                interp_threads_head: i.threads_head,
                interp_id: i.id,
                gil: Gil::Embedded {
                    locked: i.gil_locked,
                    holder: i.gil_holder,
                },
                tstate_next: t.next,
                tstate_thread_id: t.thread_id,
                tstate_native_thread_id: Some(t.native_thread_id),
                tstate_frame: t.current_frame,
                cframe_frame: None,
                frame_previous: f.previous,
                frame_instr: f.instr_ptr,
                instr: Instr::Pointer,
                frame_localsplus: f.localsplus,
                code_linetable: c.linetable,
                line_table: LineTable::Locations,
                code_localnames: c.localsplusnames,
                code_localkinds: Some(c.localspluskinds),
                code_nlocals: 80,
                code_adaptive: c.co_code_adaptive,
            }),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_from_3_6_to_3_15_has_one_row() {
        for m in 6..=15 {
            let row = VersionLayout::of(PyVersion::new(3, m)).unwrap();
            assert_eq!(row.version, PyVersion::new(3, m));
            assert!(!row.from_build);
        }
        for m in [5, 16] {
            assert!(VersionLayout::of(PyVersion::new(3, m)).is_none(), "3.{m}");
        }
        assert!(VersionLayout::of(PyVersion::new(2, 7)).is_none());
        let micro = PyVersion::from_hex(0x030b02f0);
        assert_eq!(VersionLayout::of(micro).unwrap().version, micro);
    }

    #[test]
    fn the_stack_walk_is_tabled_for_3_8_to_3_12_and_the_build_gives_it_after() {
        for m in 6..=15 {
            let row = VersionLayout::of(PyVersion::new(3, m)).unwrap();
            assert_eq!(row.walk.is_some(), (8..=12).contains(&m), "3.{m}");
            assert_eq!(row.objects.is_some(), m >= 8, "3.{m}");
            assert_eq!(row.code_qualname.is_some(), m >= 11, "3.{m}");
            assert_eq!(row.frame_owner.is_some(), m >= 11, "3.{m}");
        }
    }

    /// The values the eval-frame and stack-walk tables held apart before they were one
    /// (`eval_layout` for 3.6-3.15, `InterpreterLayout::of` for 3.8-3.12), per version:
    /// (minor, frame in rdi, f_code, owner, co_flags, co_firstlineno, co_filename, co_name,
    /// str ascii data, str compact data).
    const EVAL: [(u8, [u32; 9]); 10] = [
        (6, [1, 32, 0, 32, 36, 96, 104, 48, 72]),
        (7, [1, 32, 0, 32, 36, 96, 104, 48, 72]),
        (8, [1, 32, 0, 36, 40, 104, 112, 48, 72]),
        (9, [0, 32, 0, 36, 40, 104, 112, 48, 72]),
        (10, [0, 32, 0, 36, 40, 104, 112, 48, 72]),
        (11, [0, 32, 69, 48, 72, 112, 120, 48, 72]),
        (12, [0, 0, 70, 48, 68, 112, 120, 40, 56]),
        (13, [0, 0, 70, 48, 68, 112, 120, 40, 56]),
        (14, [0, 0, 74, 48, 68, 112, 120, 40, 56]),
        (15, [0, 0, 74, 48, 68, 112, 120, 40, 56]),
    ];

    #[test]
    fn the_eval_frame_view_holds_the_values_it_had() {
        for (m, expected) in EVAL {
            let e = VersionLayout::of(PyVersion::new(3, m)).unwrap().eval();
            let got = [
                e.frame_in_rdi,
                e.f_code,
                e.owner,
                e.co_flags,
                e.co_firstlineno,
                e.co_filename,
                e.co_name,
                e.str_ascii_data,
                e.str_compact_data,
            ];
            assert_eq!(got, expected, "3.{m}");
            assert_eq!(e.code_tag_mask, if m >= 14 { 3 } else { 0 }, "3.{m}");
            assert_eq!((e.type_init, e.func_code) != (0, 0), m == 13, "3.{m}");
        }
    }

    /// (minor, interpreters_head, threads_head, interp id, sys.modules, thread id, tstate
    /// frame, frame previous, frame instr, localsplus, linetable, localnames, nlocals,
    /// adaptive, cached keys).
    const WALK: [(u8, [u64; 14]); 5] = [
        (8, [32, 8, 16, 56, 176, 24, 24, 104, 360, 120, 72, 28, 0, 0]),
        (
            9,
            [32, 8, 24, 856, 176, 24, 24, 104, 360, 120, 72, 28, 0, 0],
        ),
        (
            10,
            [32, 8, 24, 856, 176, 24, 24, 96, 352, 120, 72, 28, 0, 0],
        ),
        (
            11,
            [40, 16, 48, 888, 152, 56, 48, 56, 72, 136, 96, 80, 184, 872],
        ),
        (
            12,
            [40, 72, 8, 944, 136, 56, 8, 56, 72, 136, 96, 80, 192, 880],
        ),
    ];

    #[test]
    fn the_stack_walk_view_holds_the_values_it_had() {
        use super::super::InterpreterLayout;
        for (m, expected) in WALK {
            let l = InterpreterLayout::of(PyVersion::new(3, m), None).unwrap();
            let got = [
                l.interpreters_head,
                l.walk.interp_threads_head,
                l.walk.interp_id,
                l.interp_modules,
                l.walk.tstate_thread_id,
                l.walk.tstate_frame,
                l.walk.frame_previous,
                l.walk.frame_instr,
                l.walk.frame_localsplus,
                l.walk.code_linetable,
                l.walk.code_localnames,
                l.walk.code_nlocals,
                l.walk.code_adaptive,
                l.row.type_cached_keys,
            ];
            assert_eq!(got, expected, "3.{m}");
        }
        let l = |m| InterpreterLayout::of(PyVersion::new(3, m), None).unwrap();
        assert_eq!(
            [l(8).walk.gil, l(9).walk.gil, l(11).walk.gil, l(12).walk.gil],
            [
                Gil::RuntimeCurrent(1368),
                Gil::RuntimeCurrent(568),
                Gil::RuntimeCurrent(576),
                Gil::InterpPointer(384)
            ]
        );
        assert_eq!(
            [l(9).walk.instr, l(10).walk.instr, l(11).walk.instr],
            [Instr::LastiBytes, Instr::LastiUnits, Instr::Pointer]
        );
        assert_eq!(
            [
                l(9).walk.line_table,
                l(10).walk.line_table,
                l(12).walk.line_table
            ],
            [LineTable::Lnotab, LineTable::Pep626, LineTable::Locations]
        );
        assert_eq!(
            [
                l(10).walk.cframe_frame,
                l(11).walk.cframe_frame,
                l(12).walk.cframe_frame
            ],
            [None, Some(8), Some(0)]
        );
        assert_eq!(
            [
                l(11).walk.tstate_native_thread_id,
                l(12).walk.tstate_native_thread_id
            ],
            [Some(160), Some(144)]
        );
        assert_eq!(
            [l(11).row.owner_shim, l(12).row.owner_shim],
            [None, Some(3)]
        );
    }

    #[test]
    fn a_build_s_debug_offsets_win_over_its_row() {
        use super::super::debug_offsets::numbered;
        let d = DebugOffsets::parse(&numbered(14, 760)).unwrap();
        let t = VersionLayout::of(PyVersion::new(3, 14))
            .unwrap()
            .with_build(&d);
        assert!(t.from_build);
        // The positions of 3.14's fields, which `numbered` stores as their values.
        assert_eq!(
            (t.frame_code, t.frame_owner, t.code_filename, t.code_name),
            (264, Some(288), 320, 328)
        );
        assert_eq!(
            (t.code_qualname, t.code_firstlineno, t.str_ascii_data),
            (Some(336), 352, 640)
        );
        assert_eq!(
            (t.interpreters_head, t.interp_modules),
            (Some(40), Some(96))
        );
        let w = t.walk.unwrap();
        assert_eq!(
            (w.frame_previous, w.frame_instr, w.tstate_frame),
            (256, 272, 208)
        );
        // What the build does not describe stays the row's.
        assert_eq!((t.tag_mask, t.type_cached_keys, t.code_flags), (3, 880, 48));
        assert_eq!(t.objects.unwrap().str_ascii_data, 640);
    }

    #[test]
    fn the_views_agree_where_they_name_the_same_field() {
        use super::super::debug_offsets::numbered;
        let builds = [(13, 584), (14, 760), (15, 888)]
            .map(|(m, len)| DebugOffsets::parse(&numbered(m, len)).unwrap());
        let rows = (8..=12)
            .map(|m| VersionLayout::of(PyVersion::new(3, m)).unwrap())
            .chain(
                builds
                    .iter()
                    .map(|d| VersionLayout::of(d.version).unwrap().with_build(d)),
            );
        for t in rows {
            let (e, l) = (t.eval(), t.interpreter().unwrap());
            let v = t.version;
            assert_eq!(u64::from(e.f_code), l.row.frame_code, "{v}");
            assert_eq!(u64::from(e.owner), l.row.frame_owner.unwrap_or(0), "{v}");
            assert_eq!(u64::from(e.co_name), l.row.code_name, "{v}");
            assert_eq!(u64::from(e.co_filename), l.row.code_filename, "{v}");
            assert_eq!(u64::from(e.co_firstlineno), l.row.code_firstlineno, "{v}");
            assert_eq!(u64::from(e.str_compact_data), l.row.str_compact_data, "{v}");
            assert_eq!(e.str_ascii_data, l.objects.str_ascii_data, "{v}");
            assert_eq!(e.code_tag_mask, l.row.tag_mask, "{v}");
            if let Some(q) = t.qualname() {
                assert_eq!(Some(u64::from(q.co_qualname)), l.row.code_qualname, "{v}");
            }
        }
    }
}
