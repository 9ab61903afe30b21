//! The modules a process has loaded (`sys.modules`), read from its memory: which of them were
//! loaded from a file whose name is not UTF-8, the names some of CPython's probes cannot pass.
use std::io::ErrorKind;

use super::{Target, memory};
use crate::versions::objects::{
    DICT_KEYS, DICT_VALUES, MODULE_DICT, TPFLAGS_UNICODE_SUBCLASS, TYPE_FLAGS,
};
use crate::versions::{DictEntries, ModulesLayout, modules_layout};

/// A loaded module and the file it came from, whose name is not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignFile {
    pub module: String,
    /// The file name as bytes (the str's surrogates turned back into the bytes they stand for).
    pub path: Vec<u8>,
}

/// What a process has loaded, as far as pyprobe can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No interpreter yet (a command held at its exec): nothing is loaded.
    Nothing,
    /// Modules loaded from files whose names are not UTF-8 (none: all are).
    Modules(Vec<ForeignFile>),
}

/// No process has this many modules; a walk past it is reading something else.
const MAX_MODULES: u64 = 100_000;
/// `__file__` is set among a module's first attributes (name, doc, package, loader, spec).
const ATTRIBUTES_SEARCHED: u64 = 16;
/// Longer paths are not read (PATH_MAX).
const MAX_PATH_CHARS: u64 = 4096;

/// The modules of the main interpreter whose `__file__` is not UTF-8, or why pyprobe cannot
/// tell (a version it has no layout for, memory that is not what it expects).
pub fn non_utf8_files(target: &Target) -> Result<Loaded, String> {
    let version = target.version.ok_or("its CPython version is unknown")?;
    let layout = modules_layout(version)
        .ok_or_else(|| format!("pyprobe cannot read the modules of CPython {version}"))?;
    let runtime = target
        .elf
        .symbol("_PyRuntime")
        .ok_or("the interpreter has no _PyRuntime symbol")?;
    let mem = Memory::open(target.pid)?;
    let interp = mem.u64(target.runtime_addr(runtime) + layout.interpreters_head)?;
    if interp == 0 {
        return Ok(Loaded::Nothing);
    }
    let modules = mem.u64(interp + layout.interp_modules)?;
    if modules == 0 {
        return Ok(Loaded::Nothing);
    }
    mem.expect_type(modules, "dict")?;
    let mut found = Vec::new();
    for (key, module) in mem.dict_items(modules, &layout, MAX_MODULES)? {
        if module == 0 || mem.type_name(module)? != "module" {
            continue;
        }
        let dict = mem.u64(module + MODULE_DICT)?;
        if dict == 0 {
            continue;
        }
        for (attr, value) in mem.dict_items(dict, &layout, ATTRIBUTES_SEARCHED)? {
            if mem.str(attr, &layout)?.as_deref() != Some("__file__".as_bytes()) {
                continue;
            }
            if let Some(path) = mem.str(value, &layout)?
                && std::str::from_utf8(&path).is_err()
            {
                let module = mem.str(key, &layout)?.unwrap_or_default();
                found.push(ForeignFile {
                    module: String::from_utf8_lossy(&module).into_owned(),
                    path,
                });
            }
            break;
        }
    }
    Ok(Loaded::Modules(found))
}

/// The target's memory (`memory::read`).
struct Memory {
    pid: i32,
}

impl Memory {
    fn open(pid: i32) -> Result<Memory, String> {
        Ok(Memory { pid })
    }

    fn bytes(&self, addr: u64, len: u64) -> Result<Vec<u8>, String> {
        memory::read_vec(self.pid, addr, len as usize).map_err(|e| {
            if e.kind() == ErrorKind::PermissionDenied || memory::gone(self.pid) {
                format!("cannot read its memory: {e}")
            } else {
                format!("cannot read {len} bytes at {addr:#x}: {e}")
            }
        })
    }

    fn u64(&self, addr: u64) -> Result<u64, String> {
        let b = self.bytes(addr, 8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// `Py_TYPE(obj)->tp_name`, up to 32 bytes.
    fn type_name(&self, obj: u64) -> Result<String, String> {
        let name = self.u64(self.u64(obj + 8)? + 24)?;
        let bytes = self.bytes(name, 32)?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    fn expect_type(&self, obj: u64, name: &str) -> Result<(), String> {
        let found = self.type_name(obj)?;
        if found == name {
            Ok(())
        } else {
            Err(format!(
                "found a {found:?} where sys.modules should be (not the layout pyprobe expects)"
            ))
        }
    }

    /// The (key, value) pairs of the first `limit` entries of a dict (`dict_items`).
    fn dict_items(
        &self,
        dict: u64,
        layout: &ModulesLayout,
        limit: u64,
    ) -> Result<Vec<(u64, u64)>, String> {
        dict_items(&|a, n| self.bytes(a, n), dict, layout.compact_keys, limit)
    }

    /// The characters of a compact str as bytes, surrogates (U+DC80..U+DCFF, the undecodable
    /// bytes of a file name) turned back into the bytes they stand for; None if it is no str.
    fn str(&self, obj: u64, layout: &ModulesLayout) -> Result<Option<Vec<u8>>, String> {
        if obj == 0 {
            return Ok(None);
        }
        let flags = self.u64(self.u64(obj + 8)? + TYPE_FLAGS)?;
        if flags & TPFLAGS_UNICODE_SUBCLASS == 0 {
            return Ok(None);
        }
        let head = self.bytes(obj + 16, 24)?;
        let length = u64::from_le_bytes(head[0..8].try_into().expect("8"));
        let state = u32::from_le_bytes(head[16..20].try_into().expect("4"));
        let kind = u64::from((state >> 2) & 7);
        let (compact, ascii) = (state & (1 << 5) != 0, state & (1 << 6) != 0);
        if !compact || length > MAX_PATH_CHARS || !matches!(kind, 1 | 2 | 4) {
            return Ok(None);
        }
        let data = if ascii {
            layout.str_ascii_data
        } else {
            layout.str_compact_data
        };
        let raw = self.bytes(obj + data, length * kind)?;
        let chars = raw.chunks_exact(kind as usize).map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(b)
        });
        let mut out = String::new();
        let mut bytes = Vec::new();
        for ch in chars {
            match ch {
                0xdc80..=0xdcff => {
                    bytes.extend_from_slice(out.as_bytes());
                    out.clear();
                    bytes.push((ch - 0xdc00) as u8);
                }
                // Another lone surrogate: kept as its three bytes, which are not UTF-8 either.
                0xd800..=0xdfff => {
                    bytes.extend_from_slice(out.as_bytes());
                    out.clear();
                    bytes.extend([
                        0xe0 | (ch >> 12) as u8,
                        0x80 | ((ch >> 6) & 0x3f) as u8,
                        0x80 | (ch & 0x3f) as u8,
                    ]);
                }
                _ => out.push(char::from_u32(ch).unwrap_or(char::REPLACEMENT_CHARACTER)),
            }
        }
        bytes.extend_from_slice(out.as_bytes());
        Ok(Some(bytes))
    }
}

/// The (key, value) pairs of the first `limit` entries of a dict in insertion order, deleted
/// ones skipped, through `read` (address, length); `compact_keys`: 3.11+'s dict keys
/// (`dk_log2_size`, `dk_kind`, unicode entries), else 3.6-3.10's (`dk_size`, entries of hash,
/// key, value). Split dicts (instances' attributes) are not read.
pub(crate) fn dict_items(
    read: &dyn Fn(u64, u64) -> Result<Vec<u8>, String>,
    dict: u64,
    compact_keys: bool,
    limit: u64,
) -> Result<Vec<(u64, u64)>, String> {
    let word_at = |addr| -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            read(addr, 8)?.try_into().expect("8 bytes"),
        ))
    };
    let keys = word_at(dict + DICT_KEYS)?;
    let values = word_at(dict + DICT_VALUES)?;
    if keys == 0 || values != 0 {
        return Ok(Vec::new());
    }
    let header = read(keys, 40)?;
    let d = DictEntries::of(keys, &header, compact_keys).ok_or("a dict of impossible size")?;
    let len = d.len(limit);
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut items = d.pairs(&read(d.at, len)?);
    items.retain(|&(k, v)| k != 0 && v != 0);
    Ok(items)
}
