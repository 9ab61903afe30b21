//! CPython's own map of its structs (`_Py_DebugOffsets`, 3.13+), parsed from the bytes that open
//! `_PyRuntime`, so that offsets come from the build itself rather than from a table of ours.
use super::PyVersion;

/// What `_Py_DebugOffsets` starts with.
const COOKIE: &[u8; 8] = b"xdebugpy";

/// Byte offsets into CPython's structs as one build reports them (each an `offsetof` or a
/// `sizeof` in that build; values change between patch releases, positions do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugOffsets {
    /// The build's PY_VERSION_HEX.
    pub version: PyVersion,
    /// A free-threaded (`t`) build: the same fields, other values, other locking rules.
    pub free_threaded: bool,
    pub runtime_state: RuntimeOffsets,
    pub interpreter_state: InterpreterOffsets,
    pub thread_state: ThreadOffsets,
    pub interpreter_frame: FrameOffsets,
    pub code_object: CodeOffsets,
    pub unicode_object: UnicodeOffsets,
    /// The PEP 768 remote-execution fields: 3.14 and later.
    pub debugger_support: Option<DebuggerOffsets>,
}

/// In `_PyRuntimeState` (the `_PyRuntime` symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeOffsets {
    pub size: u64,
    /// `_finalizing`: the finalizing thread state, non-NULL once shutdown began.
    pub finalizing: u64,
    /// `interpreters.head`: the newest interpreter, not necessarily the main one.
    pub interpreters_head: u64,
}

/// In `PyInterpreterState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterpreterOffsets {
    pub size: u64,
    pub id: u64,
    pub next: u64,
    pub threads_head: u64,
    /// `threads.main`, the thread running `__main__` (3.14+).
    pub threads_main: Option<u64>,
    /// `imports.modules`: `sys.modules`.
    pub imports_modules: u64,
    /// The interpreter's own GIL (`_gil`): `locked` (an int) and `last_holder` (a thread
    /// state, not cleared on release).
    pub gil_locked: u64,
    pub gil_holder: u64,
}

/// In `PyThreadState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadOffsets {
    pub size: u64,
    pub prev: u64,
    pub next: u64,
    pub interp: u64,
    pub current_frame: u64,
    /// `pthread_self()` of the thread.
    pub thread_id: u64,
    /// The kernel's thread id.
    pub native_thread_id: u64,
}

/// In `_PyInterpreterFrame`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOffsets {
    pub size: u64,
    pub previous: u64,
    /// `f_executable`: a code object, tagged as a `_PyStackRef` on 3.14+.
    pub executable: u64,
    pub instr_ptr: u64,
    pub localsplus: u64,
    /// One byte: who owns the frame (thread, generator, frame object, interpreter).
    pub owner: u64,
}

/// In `PyCodeObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeOffsets {
    pub size: u64,
    pub filename: u64,
    pub name: u64,
    pub qualname: u64,
    pub linetable: u64,
    pub firstlineno: u64,
    pub argcount: u64,
    pub localsplusnames: u64,
    pub localspluskinds: u64,
    pub co_code_adaptive: u64,
}

/// In `PyASCIIObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnicodeOffsets {
    pub size: u64,
    pub state: u64,
    pub length: u64,
    /// Where an ASCII string's characters start.
    pub asciiobject_size: u64,
}

/// What a remote debugger writes to have a thread run a script (PEP 768).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebuggerOffsets {
    /// `eval_breaker` in `PyThreadState`: the bits the eval loop checks between instructions.
    pub eval_breaker: u64,
    /// `remote_debugger_support` (a `_PyRemoteDebuggerSupport`) in `PyThreadState`.
    pub remote_debugger_support: u64,
    /// `config.remote_debug` (an `int`) in `PyInterpreterState`: 0 when the process opted out.
    pub remote_debugging_enabled: u64,
    /// `debugger_pending_call` (an `int32_t`) in `_PyRemoteDebuggerSupport`.
    pub debugger_pending_call: u64,
    /// `debugger_script_path` (a `char[]`) in `_PyRemoteDebuggerSupport`.
    pub debugger_script_path: u64,
    /// The path buffer's size, its NUL included.
    pub debugger_script_path_size: u64,
}

/// Where one minor version's `_Py_DebugOffsets` puts the blocks pyprobe reads. Versions insert
/// fields in the middle (3.14 `threads_main`, 3.15 three profiling fields in `thread_state`),
/// so every block's position is per version.
struct Layout {
    /// `sizeof(_Py_DebugOffsets)`.
    len: usize,
    has_threads_main: bool,
    thread_state: usize,
    /// 3.15's `base_frame`, `last_profiled_frame` and `last_profiled_frame_seq`, between
    /// `current_frame` and `thread_id`.
    profiling_fields: bool,
    interpreter_frame: usize,
    code_object: usize,
    unicode_object: usize,
    debugger_support: Option<usize>,
}

/// The layouts of the CPython headers (`Include/internal/pycore_debug_offsets.h`), checked
/// against the bytes of Debian's 3.13.18, 3.14.10 and 3.15.2 and pyenv's 3.13.0.
fn layout(minor: u8) -> Option<Layout> {
    Some(match minor {
        13 => Layout {
            len: 584,
            has_threads_main: false,
            thread_state: 152,
            profiling_fields: false,
            interpreter_frame: 224,
            code_object: 272,
            unicode_object: 536,
            debugger_support: None,
        },
        14 => Layout {
            len: 760,
            has_threads_main: true,
            thread_state: 176,
            profiling_fields: false,
            interpreter_frame: 248,
            code_object: 312,
            unicode_object: 616,
            debugger_support: Some(712),
        },
        15 => Layout {
            len: 888,
            has_threads_main: true,
            thread_state: 176,
            profiling_fields: true,
            interpreter_frame: 312,
            code_object: 376,
            unicode_object: 712,
            debugger_support: Some(840),
        },
        _ => return None,
    })
}

/// A block of the struct read from consecutive `uint64_t` fields of `Fields`, in the order
/// its fields are named (those of the C struct).
macro_rules! words {
    ($f:ident => $block:ident { $($field:ident),* $(,)? }) => {
        $block { $($field: $f.next()?),* }
    };
}

/// Consecutive `uint64_t` fields of the struct, from a position on.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn at(bytes: &'a [u8], at: usize) -> Fields<'a> {
        Fields { bytes, at }
    }

    fn next(&mut self) -> Option<u64> {
        let word = self.bytes.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(u64::from_le_bytes(word.try_into().ok()?))
    }

    fn skip(&mut self, fields: usize) {
        self.at += 8 * fields;
    }
}

impl DebugOffsets {
    /// Parses `_Py_DebugOffsets` from the start of `_PyRuntime`'s bytes; None without the cookie,
    /// for a version whose layout pyprobe does not know, or when the bytes are too short.
    pub fn parse(bytes: &[u8]) -> Option<DebugOffsets> {
        if bytes.get(..COOKIE.len())? != COOKIE {
            return None;
        }
        let mut head = Fields::at(bytes, COOKIE.len());
        let version = PyVersion::from_hex(u32::try_from(head.next()?).ok()?);
        let free_threaded = head.next()? != 0;
        if version.major != 3 {
            return None;
        }
        let layout = layout(version.minor)?;
        if bytes.len() < layout.len {
            return None;
        }

        // The interpreter block follows the runtime block.
        let runtime_state = words!(head => RuntimeOffsets { size, finalizing, interpreters_head });
        let interpreter_state = InterpreterOffsets {
            size: head.next()?,
            id: head.next()?,
            next: head.next()?,
            threads_head: head.next()?,
            threads_main: if layout.has_threads_main {
                Some(head.next()?)
            } else {
                None
            },
            // After gc: imports_modules.
            imports_modules: {
                head.skip(1);
                head.next()?
            },
            // After sysdict, builtins, ceval_gil, gil_runtime_state and
            // gil_runtime_state_enabled.
            gil_locked: {
                head.skip(5);
                head.next()?
            },
            gil_holder: head.next()?,
        };

        let mut f = Fields::at(bytes, layout.thread_state);
        let (size, prev, next, interp, current_frame) =
            (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        if layout.profiling_fields {
            f.skip(3);
        }
        let thread_state = ThreadOffsets {
            size,
            prev,
            next,
            interp,
            current_frame,
            thread_id: f.next()?,
            native_thread_id: f.next()?,
        };

        let mut f = Fields::at(bytes, layout.interpreter_frame);
        let interpreter_frame =
            words!(f => FrameOffsets { size, previous, executable, instr_ptr, localsplus, owner });

        let mut f = Fields::at(bytes, layout.code_object);
        let code_object = words!(f => CodeOffsets {
            size, filename, name, qualname, linetable, firstlineno, argcount,
            localsplusnames, localspluskinds, co_code_adaptive
        });

        let mut f = Fields::at(bytes, layout.unicode_object);
        let unicode_object = words!(f => UnicodeOffsets { size, state, length, asciiobject_size });

        let debugger_support = match layout.debugger_support {
            None => None,
            Some(at) => {
                let mut f = Fields::at(bytes, at);
                Some(words!(f => DebuggerOffsets {
                    eval_breaker, remote_debugger_support, remote_debugging_enabled,
                    debugger_pending_call, debugger_script_path, debugger_script_path_size
                }))
            }
        };

        Some(DebugOffsets {
            version,
            free_threaded,
            runtime_state,
            interpreter_state,
            thread_state,
            interpreter_frame,
            code_object,
            unicode_object,
            debugger_support,
        })
    }
}

/// A `_Py_DebugOffsets` of `len` bytes for 3.`minor` in which every field after the header
/// holds its own position, so each parsed value names the position it was read from.
#[cfg(test)]
pub(super) fn numbered(minor: u8, len: usize) -> Vec<u8> {
    let mut b = vec![0; len];
    b[..8].copy_from_slice(COOKIE);
    let hex = 0x0300_00f0u64 | (u64::from(minor) << 16);
    b[8..16].copy_from_slice(&hex.to_le_bytes());
    for pos in (24..len).step_by(8) {
        b[pos..pos + 8].copy_from_slice(&(pos as u64).to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    // The expected positions below are the "off" columns of layouts.md §8, typed independently
    // of the block starts in `layout`.

    #[test]
    fn reads_the_3_13_positions() {
        let o = DebugOffsets::parse(&numbered(13, 584)).unwrap();
        assert_eq!(o.version, PyVersion::from_hex(0x030d00f0));
        assert!(!o.free_threaded);
        assert_eq!(
            o.runtime_state,
            RuntimeOffsets {
                size: 24,
                finalizing: 32,
                interpreters_head: 40
            }
        );
        assert_eq!(
            o.interpreter_state,
            InterpreterOffsets {
                size: 48,
                id: 56,
                next: 64,
                threads_head: 72,
                threads_main: None,
                imports_modules: 88,
                gil_locked: 136,
                gil_holder: 144
            }
        );
        assert_eq!(
            o.thread_state,
            ThreadOffsets {
                size: 152,
                prev: 160,
                next: 168,
                interp: 176,
                current_frame: 184,
                thread_id: 192,
                native_thread_id: 200
            }
        );
        assert_eq!(
            o.interpreter_frame,
            FrameOffsets {
                size: 224,
                previous: 232,
                executable: 240,
                instr_ptr: 248,
                localsplus: 256,
                owner: 264
            }
        );
        assert_eq!(
            o.code_object,
            CodeOffsets {
                size: 272,
                filename: 280,
                name: 288,
                qualname: 296,
                linetable: 304,
                firstlineno: 312,
                argcount: 320,
                localsplusnames: 328,
                localspluskinds: 336,
                co_code_adaptive: 344
            }
        );
        assert_eq!(
            o.unicode_object,
            UnicodeOffsets {
                size: 536,
                state: 544,
                length: 552,
                asciiobject_size: 560
            }
        );
        assert_eq!(o.debugger_support, None);
    }

    const THREAD_3_14: ThreadOffsets = ThreadOffsets {
        size: 176,
        prev: 184,
        next: 192,
        interp: 200,
        current_frame: 208,
        thread_id: 216,
        native_thread_id: 224,
    };

    #[test]
    fn reads_the_3_14_positions() {
        let o = DebugOffsets::parse(&numbered(14, 760)).unwrap();
        assert_eq!((o.version.major, o.version.minor), (3, 14));
        assert_eq!(o.runtime_state.interpreters_head, 40);
        assert_eq!(o.interpreter_state.threads_main, Some(80));
        assert_eq!(o.interpreter_state.imports_modules, 96);
        assert_eq!(
            (
                o.interpreter_state.gil_locked,
                o.interpreter_state.gil_holder
            ),
            (144, 152)
        );
        assert_eq!(o.thread_state, THREAD_3_14);
        assert_eq!(
            (o.interpreter_frame.previous, o.interpreter_frame.owner),
            (256, 288)
        );
        assert_eq!(
            (o.code_object.size, o.code_object.co_code_adaptive),
            (312, 384)
        );
        assert_eq!(
            (o.unicode_object.size, o.unicode_object.asciiobject_size),
            (616, 640)
        );
        assert_eq!(
            o.debugger_support,
            Some(DebuggerOffsets {
                eval_breaker: 712,
                remote_debugger_support: 720,
                remote_debugging_enabled: 728,
                debugger_pending_call: 736,
                debugger_script_path: 744,
                debugger_script_path_size: 752
            })
        );
    }

    #[test]
    fn reads_the_3_15_positions() {
        let o = DebugOffsets::parse(&numbered(15, 888)).unwrap();
        assert_eq!(o.interpreter_state.threads_main, Some(80));
        // 3.15's three profiling fields come between current_frame and thread_id.
        assert_eq!(
            o.thread_state,
            ThreadOffsets {
                thread_id: 240,
                native_thread_id: 248,
                ..THREAD_3_14
            }
        );
        assert_eq!(
            (o.interpreter_frame.size, o.interpreter_frame.owner),
            (312, 352)
        );
        assert_eq!((o.code_object.filename, o.code_object.argcount), (384, 424));
        assert_eq!(
            (o.unicode_object.state, o.unicode_object.length),
            (720, 728)
        );
        let d = o.debugger_support.unwrap();
        assert_eq!((d.eval_breaker, d.debugger_script_path_size), (840, 880));
    }

    #[test]
    fn takes_the_flag_of_a_free_threaded_build() {
        let mut b = numbered(14, 760);
        b[16] = 1;
        assert!(DebugOffsets::parse(&b).unwrap().free_threaded);
    }

    #[test]
    fn refuses_bytes_without_the_cookie() {
        let mut b = numbered(14, 760);
        b[0] = b'y';
        assert_eq!(DebugOffsets::parse(&b), None);
        assert_eq!(DebugOffsets::parse(&[]), None);
        assert_eq!(DebugOffsets::parse(b"xdebug"), None);
    }

    #[test]
    fn refuses_versions_it_does_not_know() {
        for minor in [12, 16] {
            assert_eq!(
                DebugOffsets::parse(&numbered(minor, 1024)),
                None,
                "3.{minor}"
            );
        }
        let mut b = numbered(14, 760);
        b[11] = 4; // Python 4.14
        assert_eq!(DebugOffsets::parse(&b), None);
        b[11] = 3;
        b[12] = 1; // a version above 32 bits
        assert_eq!(DebugOffsets::parse(&b), None);
    }

    #[test]
    fn refuses_a_truncated_struct() {
        for (minor, len) in [(13, 584), (14, 760), (15, 888)] {
            let b = numbered(minor, len);
            assert!(DebugOffsets::parse(&b).is_some(), "3.{minor}");
            assert_eq!(DebugOffsets::parse(&b[..len - 1]), None, "3.{minor}");
            assert_eq!(DebugOffsets::parse(&b[..24]), None, "3.{minor}");
        }
    }
}
