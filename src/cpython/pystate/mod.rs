//! A live interpreter's state read from outside, through the target's memory: its threads, each
//! thread's frames, and the code objects, lines and local variables of those frames (the same
//! walk bpf/sample.bpf.c makes in the kernel, with the same per-version layout).
mod lines;
mod names;
mod tasks;
mod values;

use std::collections::HashMap;
use std::io;
use std::rc::Rc;

pub use lines::line_at;
pub use names::PythonThread;
pub use tasks::{MAX_CHAIN, MAX_TASKS, RawTask, TaskList, TaskReader, Waiter, no_task_layout};
pub use values::Value;

use crate::error::{Error, Result};
use crate::signals::stop_requested;
use crate::target::Target;
use crate::target::memory;
use crate::versions::{DebugOffsets, Gil, Instr, InterpreterLayout};

/// Bounds every walk of a list read from a live process (a torn read can make a cycle): at most
/// this many threads and frames per thread are kept.
pub const MAX_THREADS: usize = 4096;
const MAX_INTERPRETERS: usize = 64;
pub const MAX_FRAMES: usize = 4096;
/// Past what is kept, the rest of a list is only counted (to say how much was not shown), up
/// to this many elements in all (about 0.1 s of reads): a list that goes on is a cycle (a
/// corrupt or torn list, or a hostile target's) or deeper than pyprobe counts. Each walk also
/// looks at Ctrl-C every `STOP_CHECK` elements, so that a target cannot hold pyprobe.
const MAX_WALK: usize = 1 << 16;
const STOP_CHECK: usize = 1024;
/// Bytes of a name or path read at most.
const MAX_TEXT: u64 = 4096;

/// One thread state of the interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadState {
    pub addr: u64,
    /// `pthread_self()`: `threading.get_ident()`, and the thread's FS base.
    pub thread_id: u64,
    /// The kernel's thread id as the target sees it (3.11+).
    pub native_id: Option<u32>,
    /// Its interpreter's id (0: the main interpreter).
    pub interp_id: i64,
}

/// Every thread state as one walk of the interpreters' lists read them (`T`: the thread state,
/// or what was read of the thread, `walk::RawThread`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadList<T = ThreadState> {
    /// At most `MAX_THREADS`, the newest interpreter's first.
    pub threads: Vec<T>,
    /// Thread states past `MAX_THREADS`: counted, not kept.
    pub not_shown: u64,
    /// Why the walk ended before the end of the lists: the threads before are kept.
    pub error: Option<String>,
}

impl<T> Default for ThreadList<T> {
    fn default() -> Self {
        ThreadList {
            threads: Vec::new(),
            not_shown: 0,
            error: None,
        }
    }
}

/// One thread's frames as one walk of its frame chain read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameWalk {
    /// Innermost first, at most `MAX_FRAMES`.
    pub frames: Vec<RawFrame>,
    /// Frames past `MAX_FRAMES` (the outermost): counted, not kept.
    pub not_shown: u64,
    /// Why the walk ended before the outermost frame (a pointer into unmapped memory, a
    /// chain with no end): the frames read before are kept.
    pub error: Option<String>,
}

/// Errors that end a whole read, not just one list: the process is gone, or unreadable, or
/// Ctrl-C.
fn ends_the_read(e: &Error) -> bool {
    matches!(
        e,
        Error::NoSuchProcess(_) | Error::NoAccess { .. } | Error::Stopped
    )
}

/// Ctrl-C (or SIGTERM) asked for during a long walk: it ends the read.
fn check_stop(step: usize) -> Result<()> {
    if step % STOP_CHECK == STOP_CHECK - 1 && stop_requested() {
        return Err(Error::Stopped);
    }
    Ok(())
}

/// A frame as read: its code object and where it is (f_lasti or the instruction pointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame {
    pub addr: u64,
    pub code: u64,
    pub instr: u64,
}

/// A code object's identity and what names its frames' lines and locals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The qualified name where the version has one (3.11+: `Class.method`), else the name.
    pub name: String,
    pub file: String,
    pub firstlineno: i32,
    table: Vec<u8>,
    local_names: Vec<String>,
    /// 3.11+: each local's kind (co_localspluskinds).
    local_kinds: Vec<u8>,
}

/// One local variable of a frame, its value described briefly.
#[derive(Debug, Clone, PartialEq)]
pub struct Local {
    pub name: String,
    /// An argument of the function.
    pub value: Value,
}

/// Local kinds (3.11+): hidden locals (inlined comprehensions' own) are no variables of the
/// function; cells and free variables hold their value in a cell.
const KIND_HIDDEN: u8 = 0x10;
const KIND_CELL: u8 = 0x40;
const KIND_FREE: u8 = 0x80;

/// The target's interpreter, read from outside. Code objects and type names are cached.
pub struct Interpreter {
    pub pid: i32,
    pub layout: InterpreterLayout,
    /// Run-time address of `_PyRuntime`.
    pub runtime: u64,
    /// By address, with what the code object there pointed at when it was read.
    codes: HashMap<u64, (CodeFingerprint, Rc<Code>)>,
    types: HashMap<u64, Rc<str>>,
    /// Where an attribute is in the keys instances share (names.rs): split keys only grow,
    /// so a slot once found stays the attribute's.
    key_slots: HashMap<(u64, &'static str), Option<u64>>,
}

/// A code object's name and file pointers and first line: a cached code object whose address
/// now holds other ones was freed and the address reused (a module's body run at start-up
/// leaves its address to a function compiled later), and is read again.
#[derive(Clone, Copy, PartialEq, Eq)]
struct CodeFingerprint {
    name: u64,
    file: u64,
    firstlineno: u32,
}

impl Interpreter {
    /// The layout of the target's build; refused, naming the version, where pyprobe has none.
    pub fn layout_of(target: &Target) -> Result<(InterpreterLayout, u64)> {
        let unknown = |why: &str| Error::UnknownLayout {
            interpreter: target.interpreter.clone(),
            version: target.version_text(),
            why: why.to_string(),
        };
        let version = target
            .version
            .ok_or_else(|| unknown("its version is unknown"))?;
        let runtime = target
            .elf
            .symbol_info("_PyRuntime")
            .ok_or_else(|| unknown("it exports no _PyRuntime"))?;
        let build = DebugOffsets::parse(&runtime.head);
        if build.is_some_and(|d| d.free_threaded) {
            return Err(unknown("free-threaded builds are not supported"));
        }
        let layout = InterpreterLayout::of(version, build.as_ref()).ok_or_else(|| {
            if version.major == 3 && version.minor >= 13 && version.minor <= 15 {
                unknown("its _Py_DebugOffsets are missing or unreadable")
            } else {
                unknown("pyprobe knows the layouts of CPython 3.8 to 3.15")
            }
        })?;
        Ok((layout, target.runtime_addr(runtime.addr)))
    }

    pub fn open(target: &Target) -> Result<Interpreter> {
        let (layout, runtime) = Self::layout_of(target)?;
        Ok(Interpreter {
            pid: target.pid,
            layout,
            runtime,
            codes: HashMap::new(),
            types: HashMap::new(),
            key_slots: HashMap::new(),
        })
    }

    fn read(&self, addr: u64, buf: &mut [u8], what: &'static str) -> Result<()> {
        memory::read(self.pid, addr, buf)
            .map_err(|e| memory::error(self.pid, "read", what, addr, e))
    }

    pub fn u64(&self, addr: u64, what: &'static str) -> Result<u64> {
        let mut b = [0; 8];
        self.read(addr, &mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    fn i64(&self, addr: u64, what: &'static str) -> Result<i64> {
        Ok(self.u64(addr, what)? as i64)
    }

    pub(crate) fn u32(&self, addr: u64, what: &'static str) -> Result<u32> {
        let mut b = [0; 4];
        self.read(addr, &mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn bytes(&self, addr: u64, len: u64, what: &'static str) -> Result<Vec<u8>> {
        let mut b = vec![0; len.min(1 << 20) as usize];
        self.read(addr, &mut b, what)?;
        Ok(b)
    }

    /// Every thread state of every interpreter, the newest interpreter's first. Fails only
    /// where no thread could be read (or the process is gone); a list that breaks later, or
    /// is longer than `MAX_THREADS`, keeps what was read and says what was not.
    pub fn threads(&self) -> Result<ThreadList> {
        let mut list = ThreadList::default();
        match self.walk_threads(&mut list) {
            Err(e) if ends_the_read(&e) || list.threads.is_empty() => Err(e),
            Err(e) => {
                list.error = Some(why(&e));
                Ok(list)
            }
            Ok(()) => Ok(list),
        }
    }

    fn walk_threads(&self, list: &mut ThreadList) -> Result<()> {
        let l = &self.layout;
        let mut walked = 0;
        let mut interp = self.u64(self.runtime + l.interpreters_head, "interpreters.head")?;
        for _ in 0..MAX_INTERPRETERS {
            if interp == 0 {
                break;
            }
            let interp_id = self.i64(interp + l.walk.interp_id, "interp->id")?;
            let mut ts = self.u64(interp + l.walk.interp_threads_head, "interp->threads.head")?;
            while ts != 0 {
                walked += 1;
                check_stop(walked)?;
                if walked > MAX_WALK {
                    return Err(endless(self.pid, "tstate->next", ts));
                }
                if list.threads.len() < MAX_THREADS {
                    let native_id = match l.walk.tstate_native_thread_id {
                        Some(o) => Some(self.u64(ts + o, "tstate->native_thread_id")? as u32),
                        None => None,
                    };
                    list.threads.push(ThreadState {
                        addr: ts,
                        thread_id: self.u64(ts + l.walk.tstate_thread_id, "tstate->thread_id")?,
                        native_id,
                        interp_id,
                    });
                } else {
                    list.not_shown += 1;
                }
                ts = self.u64(ts + l.walk.tstate_next, "tstate->next")?;
            }
            interp = self.u64(interp + l.walk.interp_next, "interp->next")?;
        }
        Ok(())
    }

    /// The thread state holding the GIL, where the version tells (the main interpreter's GIL).
    pub fn gil_holder(&self) -> Option<u64> {
        let l = &self.layout;
        match l.walk.gil {
            Gil::RuntimeCurrent(o) => self.u64(self.runtime + o, "gilstate.tstate_current").ok(),
            Gil::InterpPointer(o) => {
                let gil = self.u64(self.main_interp()? + o, "ceval.gil").ok()?;
                self.held(gil + 16, gil + 8)
            }
            Gil::Embedded { locked, holder } => {
                let interp = self.main_interp()?;
                self.held(interp + locked, interp + holder)
            }
        }
        .filter(|&t| t != 0)
    }

    fn held(&self, locked: u64, holder: u64) -> Option<u64> {
        // `last_holder` stays set after a release.
        (self.u32(locked, "gil.locked").ok()? != 0)
            .then(|| self.u64(holder, "gil.last_holder").ok())
            .flatten()
    }

    pub(crate) fn main_interp(&self) -> Option<u64> {
        let l = &self.layout;
        let mut interp = self
            .u64(self.runtime + l.interpreters_head, "interpreters.head")
            .ok()?;
        for _ in 0..MAX_INTERPRETERS {
            if interp == 0 {
                return None;
            }
            if self.i64(interp + l.walk.interp_id, "interp->id").ok()? == 0 {
                return Some(interp);
            }
            interp = self.u64(interp + l.walk.interp_next, "interp->next").ok()?;
        }
        None
    }

    /// A thread's frames, innermost first, without the shim frames of 3.12+. Fails only where
    /// the process is gone or unreadable: a chain that breaks, or is longer than `MAX_FRAMES`,
    /// keeps the frames read and says what was not (one bad thread spoils no other).
    pub fn frames(&self, ts: &ThreadState) -> Result<FrameWalk> {
        self.walk(ts, MAX_FRAMES, MAX_WALK)
    }

    /// Only the innermost `keep` frames, in at most twice as many steps, as the kernel's
    /// sampler walks them (bpf/sample.bpf.c): `not_shown` is 1 where there are more, and the
    /// rest is not counted (a sampler reads every tick).
    pub fn innermost_frames(&self, ts: &ThreadState, keep: usize) -> Result<FrameWalk> {
        self.walk(ts, keep, 2 * keep)
    }

    fn walk(&self, ts: &ThreadState, keep: usize, steps: usize) -> Result<FrameWalk> {
        let mut walk = FrameWalk::default();
        match self.walk_frames(ts, &mut walk, keep, steps) {
            Err(e) if ends_the_read(&e) => Err(e),
            Err(e) => {
                walk.error = Some(why(&e));
                Ok(walk)
            }
            Ok(()) => Ok(walk),
        }
    }

    /// Keeps `keep` frames and counts the rest, in at most `steps` steps: where that is all
    /// of `MAX_WALK`, a chain that goes on is an error; else the walk just ends there.
    fn walk_frames(
        &self,
        ts: &ThreadState,
        walk: &mut FrameWalk,
        keep: usize,
        steps: usize,
    ) -> Result<()> {
        let l = &self.layout;
        let counts = steps >= MAX_WALK;
        let mut frame = self.u64(ts.addr + l.walk.tstate_frame, "tstate's current frame")?;
        if let (Some(o), true) = (l.walk.cframe_frame, frame != 0) {
            frame = self.u64(frame + o, "cframe->current_frame")?;
        }
        for step in 0..steps {
            if frame == 0 {
                return Ok(());
            }
            check_stop(step)?;
            let shim = match (l.row.frame_owner, l.row.owner_shim) {
                (Some(o), Some(min)) => {
                    let mut b = [0u8];
                    self.read(frame + o, &mut b, "frame->owner")?;
                    b[0] >= min
                }
                _ => false,
            };
            if shim {
                // A C-stack entry frame: no Python function, neither shown nor counted.
            } else if walk.frames.len() < keep {
                walk.frames.push(RawFrame {
                    addr: frame,
                    code: self.u64(frame + l.row.frame_code, "frame's code")? & !l.row.tag_mask,
                    instr: self.u64(frame + l.walk.frame_instr, "frame's instruction")?,
                });
            } else {
                walk.not_shown += 1;
                if !counts {
                    return Ok(());
                }
            }
            frame = self.u64(frame + l.walk.frame_previous, "frame->previous")?;
        }
        match counts {
            true => Err(endless(self.pid, "frame->previous", frame)),
            false => Ok(()),
        }
    }

    /// The type name of an object (`ob_type->tp_name`), cached per type.
    pub fn type_name(&mut self, obj: u64) -> Result<Rc<str>> {
        let ty = self.u64(obj + 8, "ob_type")?;
        self.type_object_name(ty)
    }

    /// A type object's `tp_name`, cached.
    pub fn type_object_name(&mut self, ty: u64) -> Result<Rc<str>> {
        if let Some(n) = self.types.get(&ty) {
            return Ok(n.clone());
        }
        let name_ptr = self.u64(ty + u64::from(self.layout.objects.type_name), "tp_name")?;
        let name: Rc<str> = self.c_string(name_ptr, 128)?.into();
        self.types.insert(ty, name.clone());
        Ok(name)
    }

    fn c_string(&self, addr: u64, max: u64) -> Result<String> {
        let mut out = Vec::new();
        let mut at = addr;
        while (out.len() as u64) < max {
            // Reads stop at the end of a page: the string may end just before unmapped memory.
            let chunk = (4096 - at % 4096).min(64);
            let b = self.bytes(at, chunk, "a C string")?;
            if let Some(end) = b.iter().position(|&c| c == 0) {
                out.extend_from_slice(&b[..end]);
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&b);
            at += chunk;
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// A str object's text (compact strs: every str CPython makes for names and paths), at
    /// most `max` characters; None for a legacy (non-compact) str.
    pub fn str_text(&self, obj: u64, max: u64) -> Result<Option<(String, u64)>> {
        let o = &self.layout.objects;
        let state = self.u32(obj + u64::from(o.str_state), "str state")?;
        let length = self.u64(obj + 16, "str length")?;
        let (kind, compact, ascii) = ((state >> 2) & 7, state & 32 != 0, state & 64 != 0);
        if !compact || !matches!(kind, 1 | 2 | 4) {
            return Ok(None);
        }
        let data = obj
            + if ascii {
                u64::from(o.str_ascii_data)
            } else {
                self.layout.row.str_compact_data
            };
        let n = length.min(max);
        let raw = self.bytes(data, n * u64::from(kind), "str data")?;
        let text = match kind {
            1 => raw.iter().map(|&b| b as char).collect(),
            2 => String::from_utf16_lossy(
                &raw.chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect::<Vec<_>>(),
            ),
            _ => raw
                .chunks_exact(4)
                .map(|c| {
                    char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('?')
                })
                .collect(),
        };
        Ok(Some((text, length)))
    }

    fn name(&self, obj: u64) -> Result<String> {
        Ok(self
            .str_text(obj, MAX_TEXT)?
            .map_or_else(|| "?".into(), |(t, _)| t))
    }

    pub(crate) fn bytes_object(&self, obj: u64, max: u64) -> Result<(Vec<u8>, u64)> {
        let len = self.u64(obj + 16, "bytes length")?;
        let data = self.bytes(
            obj + u64::from(self.layout.objects.bytes_data),
            len.min(max),
            "bytes data",
        )?;
        Ok((data, len))
    }

    fn tuple_items(&self, obj: u64) -> Result<Vec<u64>> {
        let n = self.u64(obj + 16, "tuple length")?.min(65536);
        let raw = self.bytes(
            obj + u64::from(self.layout.objects.tuple_items),
            n * 8,
            "tuple items",
        )?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }

    /// A code object, read once per address; refused when the object there is no code object
    /// (a frame torn by a running thread).
    pub fn code(&mut self, addr: u64) -> Result<Rc<Code>> {
        let l = self.layout;
        let name_field = l.row.code_qualname.unwrap_or(l.row.code_name);
        let fingerprint = CodeFingerprint {
            name: self.u64(addr + name_field, "co_qualname")?,
            file: self.u64(addr + l.row.code_filename, "co_filename")?,
            firstlineno: self.u32(addr + l.row.code_firstlineno, "co_firstlineno")?,
        };
        if let Some((seen, c)) = self.codes.get(&addr)
            && *seen == fingerprint
        {
            return Ok(c.clone());
        }
        if &*self.type_name(addr)? != "code" {
            return Err(Error::TargetMemory {
                pid: self.pid,
                action: "read",
                what: "a frame's code object",
                addr,
                source: io::Error::new(io::ErrorKind::InvalidData, "not a code object"),
            });
        }
        let name = self.name(fingerprint.name)?;
        let file = self.name(fingerprint.file)?;
        let firstlineno = fingerprint.firstlineno as i32;
        let (table, _) = self.bytes_object(
            self.u64(addr + l.walk.code_linetable, "line table")?,
            1 << 20,
        )?;
        let mut local_names = Vec::new();
        for n in self.tuple_items(self.u64(addr + l.walk.code_localnames, "local names")?)? {
            local_names.push(self.name(n)?);
        }
        let local_kinds = match l.walk.code_localkinds {
            Some(o) => {
                self.bytes_object(self.u64(addr + o, "local kinds")?, 65536)?
                    .0
            }
            None => {
                let n = self.u32(addr + l.walk.code_nlocals, "co_nlocals")? as usize;
                local_names.truncate(n);
                Vec::new()
            }
        };
        let code = Rc::new(Code {
            name,
            file,
            firstlineno,
            table,
            local_names,
            local_kinds,
        });
        self.codes.insert(addr, (fingerprint, code.clone()));
        Ok(code)
    }

    /// The line a frame of `code` (at `code_addr`) is at, from its `instr`.
    pub fn line(&self, code_addr: u64, code: &Code, instr: u64) -> i32 {
        let l = &self.layout;
        let addr = match l.walk.instr {
            Instr::LastiBytes => i64::from(instr as u32 as i32),
            Instr::LastiUnits => i64::from(instr as u32 as i32) * 2,
            Instr::Pointer => {
                let base = code_addr + l.walk.code_adaptive;
                if instr < base {
                    -1
                } else {
                    (instr - base) as i64
                }
            }
        };
        line_at(l.walk.line_table, code.firstlineno, &code.table, addr).unwrap_or(code.firstlineno)
    }

    /// A frame's local variables, in the code object's order (arguments first); those not yet
    /// bound are left out.
    pub fn locals(&mut self, frame: &RawFrame, code: &Code) -> Result<Vec<Local>> {
        let l = self.layout;
        let n = code.local_names.len() as u64;
        let raw = self.bytes(frame.addr + l.walk.frame_localsplus, n * 8, "frame locals")?;
        let mut out = Vec::new();
        for (i, (name, slot)) in code.local_names.iter().zip(raw.chunks_exact(8)).enumerate() {
            let kind = code.local_kinds.get(i).copied().unwrap_or(0);
            if kind & KIND_HIDDEN != 0 {
                continue;
            }
            let mut obj = u64::from_le_bytes(slot.try_into().unwrap()) & !l.row.tag_mask;
            if obj == 0 {
                continue;
            }
            if kind & (KIND_CELL | KIND_FREE) != 0 && &*self.type_name(obj)? == "cell" {
                obj = self.u64(obj + 16, "cell contents")?;
                if obj == 0 {
                    continue;
                }
            }
            let value =
                values::describe(self, obj).unwrap_or_else(|_| Value::Other("<unreadable>".into()));
            out.push(Local {
                name: name.clone(),
                value,
            });
        }
        Ok(out)
    }
}

/// A list read from the target that did not end within `MAX_WALK` elements.
fn endless(pid: i32, link: &'static str, addr: u64) -> Error {
    Error::TargetMemory {
        pid,
        action: "follow",
        what: link,
        addr,
        source: io::Error::other(format!(
            "not followed past {MAX_WALK} elements (a cycle, or deeper than pyprobe counts)"
        )),
    }
}

/// What ended one list's walk, in short: the field that could not be read, and why.
fn why(e: &Error) -> String {
    match e {
        Error::TargetMemory {
            what, addr, source, ..
        } => format!("{what} at {addr:#x}: {source}"),
        e => e.one_line(),
    }
}

/// This process read as an interpreter with 3.12's layout (frames with an owner byte, shims,
/// behind a cframe), for the unit tests that lay out frames, lists and objects in pyprobe's own
/// memory (here and in tasks.rs).
#[cfg(test)]
fn own_interpreter() -> Interpreter {
    Interpreter {
        pid: std::process::id() as i32,
        layout: InterpreterLayout::of(crate::versions::PyVersion::new(3, 12), None).unwrap(),
        runtime: 0,
        codes: HashMap::new(),
        types: HashMap::new(),
        key_slots: HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::PyVersion;

    /// A frame chain in this process's own memory, read through process_vm_readv as a
    /// target's is: `n` frames, innermost first, each the caller of the one before; `shims`
    /// are C-stack entry frames. Returns the frames (kept alive) and the thread state.
    struct Chain {
        frames: Vec<[u64; 10]>,
        cframe: Box<[u64; 1]>,
        tstate: Box<[u64; 16]>,
    }

    fn chain(n: usize, shims: &[usize]) -> Chain {
        let l = InterpreterLayout::of(PyVersion::new(3, 12), None).unwrap();
        let mut frames = vec![[0u64; 10]; n];
        let base = frames.as_ptr() as u64;
        for (i, f) in frames.iter_mut().enumerate() {
            f[(l.row.frame_code / 8) as usize] = 0x1000 + i as u64;
            f[(l.walk.frame_instr / 8) as usize] = 0x2000 + i as u64;
            f[(l.walk.frame_previous / 8) as usize] = if i + 1 < n {
                base + 80 * (i as u64 + 1)
            } else {
                0
            };
            if shims.contains(&i) {
                let owner = l.row.frame_owner.unwrap();
                f[(owner / 8) as usize] = u64::from(l.row.owner_shim.unwrap()) << (8 * (owner % 8));
            }
        }
        let cframe = Box::new([base]);
        let mut tstate = Box::new([0u64; 16]);
        tstate[(l.walk.tstate_frame / 8) as usize] = cframe.as_ptr() as u64;
        Chain {
            frames,
            cframe,
            tstate,
        }
    }

    impl Chain {
        fn state(&self) -> ThreadState {
            ThreadState {
                addr: self.tstate.as_ptr() as u64,
                thread_id: 0,
                native_id: None,
                interp_id: 0,
            }
        }

        fn link(&mut self, i: usize, to: u64) {
            let l = InterpreterLayout::of(PyVersion::new(3, 12), None).unwrap();
            self.frames[i][(l.walk.frame_previous / 8) as usize] = to;
        }

        fn addr(&self, i: usize) -> u64 {
            self.frames.as_ptr() as u64 + 80 * i as u64
        }
    }

    #[test]
    fn a_whole_chain_is_read_without_its_shims() {
        let c = chain(6, &[2]);
        let walk = own_interpreter().frames(&c.state()).unwrap();
        let codes: Vec<u64> = walk.frames.iter().map(|f| f.code).collect();
        assert_eq!(codes, [0x1000, 0x1001, 0x1003, 0x1004, 0x1005]);
        assert_eq!((walk.not_shown, walk.error), (0, None));
        assert_eq!(c.cframe[0], c.addr(0));
    }

    #[test]
    fn frames_past_the_limit_are_counted() {
        let c = chain(5003, &[1000, 2000, 4500]);
        let walk = own_interpreter().frames(&c.state()).unwrap();
        assert_eq!(walk.frames.len(), MAX_FRAMES);
        assert_eq!(walk.not_shown, 5000 - MAX_FRAMES as u64);
        assert_eq!(walk.error, None);
        assert_eq!(walk.frames[0].code, 0x1000);
    }

    #[test]
    fn a_corrupt_frame_pointer_keeps_the_frames_before_it() {
        let mut c = chain(20, &[]);
        c.link(4, 0x10);
        let walk = own_interpreter().frames(&c.state()).unwrap();
        assert_eq!(walk.frames.len(), 5);
        assert_eq!(walk.frames[4].code, 0x1004);
        let why = walk.error.expect("the walk says why it stopped");
        assert!(why.starts_with("frame->owner at 0x56: "), "{why}");
    }

    #[test]
    fn a_cycle_ends_the_walk_with_an_error() {
        let mut c = chain(3, &[]);
        let first = c.addr(0);
        c.link(2, first);
        let walk = own_interpreter().frames(&c.state()).unwrap();
        assert_eq!(walk.frames.len(), MAX_FRAMES);
        assert_eq!(walk.not_shown, (MAX_WALK - MAX_FRAMES) as u64);
        let why = walk.error.expect("a cycle is an error");
        assert!(why.contains("a cycle"), "{why}");
    }

    #[test]
    fn the_samplers_walk_keeps_the_innermost_and_counts_nothing_past_them() {
        let c = chain(300, &[1]);
        let walk = own_interpreter().innermost_frames(&c.state(), 128).unwrap();
        assert_eq!(walk.frames.len(), 128);
        assert_eq!(walk.frames[1].code, 0x1002, "the shim is skipped");
        assert_eq!((walk.not_shown, walk.error), (1, None), "more, uncounted");
        let mut c = chain(3, &[]);
        let first = c.addr(0);
        c.link(2, first);
        let walk = own_interpreter().innermost_frames(&c.state(), 128).unwrap();
        assert_eq!((walk.frames.len(), walk.not_shown), (128, 1));
        let c = chain(50, &[]);
        let walk = own_interpreter().innermost_frames(&c.state(), 128).unwrap();
        assert_eq!((walk.frames.len(), walk.not_shown), (50, 0));
    }

    #[test]
    fn an_unreadable_thread_state_is_an_error_of_its_own() {
        let mut c = chain(1, &[]);
        let l = InterpreterLayout::of(PyVersion::new(3, 12), None).unwrap();
        c.tstate[(l.walk.tstate_frame / 8) as usize] = 0x20;
        let walk = own_interpreter().frames(&c.state()).unwrap();
        assert!(walk.frames.is_empty());
        assert!(
            walk.error
                .unwrap()
                .starts_with("cframe->current_frame at 0x20")
        );
    }
}
