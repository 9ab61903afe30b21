//! `_Py_DebugOffsets` parsed from the real interpreter files, checked against the values that
//! research/layouts.md §8 decoded by other means (headers, DWARF, a live process).
use std::path::Path;

use pyprobe::target::ElfInfo;
use pyprobe::versions::{
    CodeOffsets, DebugOffsets, DebuggerOffsets, FrameOffsets, InterpreterOffsets, PyVersion,
    RuntimeOffsets, ThreadOffsets, UnicodeOffsets,
};

/// The debug offsets of an interpreter file, which must exist on the test bed.
fn offsets_of(file: &str, hint: &str) -> DebugOffsets {
    assert!(Path::new(file).exists(), "{file} missing: {hint}");
    let elf = ElfInfo::read(Path::new(file)).expect("a readable ELF file");
    let runtime = elf
        .symbol_info("_PyRuntime")
        .unwrap_or_else(|| panic!("{file} exports no _PyRuntime"));
    DebugOffsets::parse(&runtime.head).unwrap_or_else(|| panic!("{file}: no debug offsets parsed"))
}

fn sid(version: &str) -> DebugOffsets {
    offsets_of(
        &format!("/var/lib/pyprobe/testbeds/sid/usr/bin/python{version}"),
        "run scripts/test, which builds the sid chroot",
    )
}

// Blocks that 3.13, 3.14 and 3.15 share value for value, in these builds.
const CODE: CodeOffsets = CodeOffsets {
    size: 208,
    filename: 112,
    name: 120,
    qualname: 128,
    linetable: 136,
    firstlineno: 68,
    argcount: 52,
    localsplusnames: 96,
    localspluskinds: 104,
    co_code_adaptive: 200,
};
const UNICODE: UnicodeOffsets = UnicodeOffsets {
    size: 64,
    state: 32,
    length: 16,
    asciiobject_size: 40,
};
/// 3.14 and 3.15 frames: a larger frame, `owner` moved to 74.
const FRAME_3_14: FrameOffsets = FrameOffsets {
    size: 88,
    previous: 8,
    executable: 0,
    instr_ptr: 56,
    localsplus: 80,
    owner: 74,
};

/// A build's version (as PY_VERSION_HEX), not free-threaded, and its runtime's offsets.
/// The thread state's offsets of 3.13-3.15: the list links, interpreter and frame stay where
/// they are; its size and the thread ids move.
fn thread_state(size: u64, thread_id: u64, native_thread_id: u64) -> ThreadOffsets {
    ThreadOffsets {
        size,
        prev: 0,
        next: 8,
        interp: 16,
        current_frame: 72,
        thread_id,
        native_thread_id,
    }
}

fn assert_version_and_runtime(o: &DebugOffsets, hex: u32, runtime: RuntimeOffsets) {
    assert_eq!(o.version, PyVersion::from_hex(hex));
    assert!(!o.free_threaded);
    assert_eq!(o.runtime_state, runtime);
}

#[test]
fn sid_3_13() {
    let o = sid("3.13");
    assert_version_and_runtime(
        &o,
        0x030d12f0,
        RuntimeOffsets {
            size: 283408,
            finalizing: 608,
            interpreters_head: 632,
        },
    );
    assert_eq!(
        o.interpreter_state,
        InterpreterOffsets {
            size: 194984,
            id: 7272,
            next: 7264,
            threads_head: 7344,
            threads_main: None,
            // Where a live process's interp kept id(sys.modules).
            imports_modules: 7656,
            gil_locked: 7768,
            gil_holder: 7760
        }
    );
    assert_eq!(o.thread_state, thread_state(312, 152, 160));
    assert_eq!(
        o.interpreter_frame,
        FrameOffsets {
            size: 80,
            previous: 8,
            executable: 0,
            instr_ptr: 56,
            localsplus: 72,
            owner: 70
        }
    );
    assert_eq!(o.code_object, CODE);
    assert_eq!(o.unicode_object, UNICODE);
    assert_eq!(o.debugger_support, None);
}

/// What 3.14 and 3.15 share: the frame, code and string layouts, and the debugger's offsets but
/// where the thread state keeps its remote-debugger support and the flag that enables it.
fn assert_frames_code_and_debugger_of_3_14(
    o: &DebugOffsets,
    remote_debugger_support: u64,
    remote_debugging_enabled: u64,
) {
    assert_eq!(o.interpreter_frame, FRAME_3_14);
    assert_eq!(
        o.code_object,
        CodeOffsets {
            size: 216,
            co_code_adaptive: 208,
            ..CODE
        }
    );
    assert_eq!(o.unicode_object, UNICODE);
    assert_eq!(
        o.debugger_support,
        Some(DebuggerOffsets {
            eval_breaker: 24,
            remote_debugger_support,
            remote_debugging_enabled,
            debugger_pending_call: 0,
            debugger_script_path: 4,
            debugger_script_path_size: 512
        })
    );
}

#[test]
fn sid_3_14() {
    let o = sid("3.14");
    assert_version_and_runtime(
        &o,
        0x030e0af0,
        RuntimeOffsets {
            size: 316616,
            finalizing: 784,
            interpreters_head: 808,
        },
    );
    assert_eq!(
        o.interpreter_state,
        InterpreterOffsets {
            size: 225864,
            id: 7280,
            next: 7272,
            threads_head: 7344,
            threads_main: Some(7360),
            // Where a live process's interp kept id(sys.modules).
            imports_modules: 7688,
            gil_locked: 7800,
            gil_holder: 7792
        }
    );
    assert_eq!(o.thread_state, thread_state(832, 152, 160));
    assert_frames_code_and_debugger_of_3_14(&o, 304, 8076);
}

#[test]
fn sid_3_15() {
    let o = sid("3.15");
    assert_version_and_runtime(
        &o,
        0x030f02f0,
        RuntimeOffsets {
            size: 346568,
            finalizing: 912,
            interpreters_head: 936,
        },
    );
    assert_eq!(
        o.interpreter_state,
        InterpreterOffsets {
            size: 226240,
            id: 7272,
            next: 7264,
            threads_head: 7336,
            threads_main: Some(7352),
            // Where a live process's interp kept id(sys.modules).
            imports_modules: 7592,
            gil_locked: 7752,
            gil_holder: 7744
        }
    );
    assert_eq!(o.thread_state, thread_state(888, 176, 184));
    assert_frames_code_and_debugger_of_3_14(&o, 344, 8028);
}

/// A shared libpython (pyenv's 3.13.0): the same layout as sid's 3.13, other sizes.
#[test]
fn pyenv_3_13_0_library() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let o = offsets_of(
        &format!("{home}/.pyenv/versions/3.13.0/lib/libpython3.13.so.1.0"),
        "the pyenv builds are part of this machine image",
    );
    assert_eq!(o.version, PyVersion::from_hex(0x030d00f0));
    assert_eq!(
        (
            o.runtime_state.size,
            o.interpreter_state.size,
            o.thread_state.size
        ),
        (283320, 194968, 304)
    );
    assert_eq!(o.runtime_state.interpreters_head, 632);
    assert_eq!(o.thread_state.current_frame, 72);
    assert_eq!(o.interpreter_frame.owner, 70);
    assert_eq!(o.code_object, CODE);
}

/// Before 3.13 `_PyRuntime` starts with no cookie: nothing parsed, nothing guessed.
#[test]
fn nothing_before_3_13() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let file = format!("{home}/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0");
    assert!(Path::new(&file).exists(), "{file} missing");
    let elf = ElfInfo::read(Path::new(&file)).unwrap();
    let runtime = elf
        .symbol_info("_PyRuntime")
        .expect("3.12 exports _PyRuntime");
    assert!(!runtime.head.is_empty());
    assert_eq!(DebugOffsets::parse(&runtime.head), None);
}

/// pyprobe's own table of frame and code offsets (used before 3.13) agrees with what each
/// build publishes about itself.
#[test]
fn the_eval_frame_table_agrees_with_every_build_that_describes_itself() {
    use pyprobe::versions::{eval_layout, eval_layout_of_build};
    for version in ["3.13", "3.14", "3.15"] {
        let d = sid(version);
        let table = eval_layout(d.version).unwrap();
        let build = eval_layout_of_build(table, &d);
        assert_eq!(
            (
                table.f_code,
                table.owner,
                table.co_firstlineno,
                table.co_filename
            ),
            (
                build.f_code,
                build.owner,
                build.co_firstlineno,
                build.co_filename
            ),
            "{version}"
        );
        assert_eq!(
            (table.co_name, table.str_ascii_data),
            (build.co_name, build.str_ascii_data),
            "{version}"
        );
    }
}
