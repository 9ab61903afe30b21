//! The code objects of the functions `--filter` names, found in the target's memory without
//! running code in it: `sys.modules` → each module's dict → its functions, and its classes'
//! dicts (methods, static and class methods, properties, nested classes).
use std::collections::HashSet;

use crate::cpython::pystate::Interpreter;
use crate::error::{Error, Result};
use crate::target::dict_items;
use crate::trace::filter::Pattern;
use crate::versions::objects::{
    DICT_USED, MODULE_DICT, TPFLAGS_HEAPTYPE, TPFLAGS_TYPE_SUBCLASS, TYPE_DICT,
};

/// No process has this many modules, nor a namespace this many names: a walk past it is
/// reading something else.
const MAX_MODULES: u64 = 100_000;
const MAX_NAMES: u64 = 100_000;
/// Classes nested deeper than this are not searched.
const MAX_NESTING: usize = 4;
/// `staticmethod`/`classmethod`'s callable; `property`'s fget, fset and fdel: at the same
/// place in every version.
const WRAPPED: u64 = 16;
const PROPERTY_FUNCTIONS: [u64; 3] = [16, 24, 32];
/// 3.8-3.10: `PyCodeObject.co_code` (a bytes object).
const CO_CODE: u64 = 48;
/// `PyCodeObject.co_consts`: 3.8-3.10 after the ints and co_code; 3.11+ first after the
/// variable-size object's head.
const CO_CONSTS_OLD: u64 = 56;
const CO_CONSTS: u64 = 24;
/// A code object's constants looked at for nested code objects, at most.
const MAX_CONSTS: u64 = 4096;

/// A function's code object, where a watchpoint sees its calls begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub code: u64,
    /// The first code unit of its bytecode: 3.11+ `co_code_adaptive` inside the code object,
    /// 3.8-3.10 the data of its `co_code` bytes.
    pub unit: u64,
    /// As reports name functions: `co_name`.
    pub name: String,
    /// `co_qualname`, or before 3.11 the path it was found under (`Class.method`).
    pub qualname: String,
    pub file: String,
    pub line: i32,
    /// 3.8-3.10: its bytecode jumps back to offset 0 (a loop as its first statement), where
    /// the watched unit is read again on each turn of the loop.
    pub loops_to_start: bool,
    /// 3.8-3.10: its `co_code` is referenced more than once: 3.10's compiler gives functions
    /// of identical bytecode one bytes object, whose watchpoint sees them all.
    pub shared: bool,
}

/// Every function of the main interpreter's modules that one of `patterns` matches, once per
/// code object; None while the interpreter has not started (a command held at exec, or still
/// in its loader).
pub fn find(interp: &mut Interpreter, patterns: &[Pattern]) -> Result<Option<Vec<Found>>> {
    let l = interp.layout;
    let Some(main) = interp.main_interp() else {
        return Ok(None);
    };
    let modules = interp.u64(main + l.interp_modules, "sys.modules")?;
    // Set early in the interpreter's start: not yet there is not started yet.
    if modules == 0 {
        return Ok(None);
    }
    if &*interp.type_name(modules)? != "dict" {
        return Err(Error::ProbeUnavailable(
            "its sys.modules is not where pyprobe expects it".into(),
        ));
    }
    let mut walk = Walk {
        patterns,
        found: Vec::new(),
        seen_types: HashSet::new(),
        seen_codes: HashSet::new(),
    };
    for (_, module) in walk.items(interp, modules, MAX_MODULES)? {
        if &*interp.type_name(module)? != "module" {
            continue;
        }
        walk.module(interp, module)?;
    }
    Ok(Some(walk.found))
}

/// How many modules `sys.modules` holds now (its dict's `ma_used`): a cheap sign that a module
/// was imported since the last search. None while the interpreter has not started.
pub fn modules_len(interp: &Interpreter) -> Option<u64> {
    let main = interp.main_interp()?;
    let modules = interp
        .u64(main + interp.layout.interp_modules, "sys.modules")
        .ok()?;
    if modules == 0 {
        return None;
    }
    interp.u64(modules + DICT_USED, "sys.modules' size").ok()
}

struct Walk<'a> {
    patterns: &'a [Pattern],
    found: Vec<Found>,
    seen_types: HashSet<u64>,
    seen_codes: HashSet<u64>,
}

impl Walk<'_> {
    /// A module's names, once: one in `sys.modules` or one a module's name refers to (a module
    /// made by `importlib.util.module_from_spec` is in no `sys.modules`).
    fn module(&mut self, interp: &mut Interpreter, module: u64) -> Result<()> {
        if !self.seen_types.insert(module) {
            return Ok(());
        }
        let dict = interp.u64(module + MODULE_DICT, "a module's dict")?;
        if dict != 0 {
            // One module that cannot be read spoils no other.
            if let Err(e) = self.namespace(interp, dict, "", 0) {
                if matches!(e, Error::Stopped) {
                    return Err(e);
                }
                if std::env::var_os("PYPROBE_WATCH_DEBUG").is_some() {
                    eprintln!("pyprobe: a module's dict at {dict:#x}: {}", e.one_line());
                }
            }
        }
        Ok(())
    }

    fn items(&self, interp: &Interpreter, dict: u64, limit: u64) -> Result<Vec<(u64, u64)>> {
        let compact = interp.layout.row.version.minor >= 11;
        dict_items(
            &|a, n| interp.bytes(a, n, "a dict").map_err(|e| e.one_line()),
            dict,
            compact,
            limit,
        )
        .map_err(Error::ProbeUnavailable)
    }

    /// A module's or a class's names: `prefix` is the class path (`Outer.Inner.`).
    fn namespace(
        &mut self,
        interp: &mut Interpreter,
        dict: u64,
        prefix: &str,
        depth: usize,
    ) -> Result<()> {
        let flags_at = u64::from(interp.layout.objects.type_flags);
        for (key, value) in self.items(interp, dict, MAX_NAMES)? {
            if crate::signals::stop_requested() {
                return Err(Error::Stopped);
            }
            let ty = interp.type_name(value)?;
            match &*ty {
                "function" => {
                    let path = format!("{prefix}{}", key_name(interp, key)?);
                    self.function(interp, value, &path)?;
                }
                "staticmethod" | "classmethod" => {
                    let f = interp.u64(value + WRAPPED, "a wrapped function")?;
                    if f != 0 && &*interp.type_name(f)? == "function" {
                        self.function(interp, f, &format!("{prefix}{}", key_name(interp, key)?))?;
                    }
                }
                "module" if prefix.is_empty() => {
                    self.module(interp, value)?;
                }
                "property" => {
                    let name = format!("{prefix}{}", key_name(interp, key)?);
                    for at in PROPERTY_FUNCTIONS {
                        let f = interp.u64(value + at, "a property's function")?;
                        if f != 0 && &*interp.type_name(f)? == "function" {
                            self.function(interp, f, &name)?;
                        }
                    }
                }
                _ => {
                    // A class defined in Python (a heap type; its metaclass a type too).
                    let meta = interp.u64(value + 8, "ob_type")?;
                    let meta_flags = interp.u64(meta + flags_at, "tp_flags")?;
                    if meta_flags & TPFLAGS_TYPE_SUBCLASS == 0 || depth >= MAX_NESTING {
                        continue;
                    }
                    let flags = interp.u64(value + flags_at, "tp_flags")?;
                    if flags & TPFLAGS_HEAPTYPE == 0 || !self.seen_types.insert(value) {
                        continue;
                    }
                    let dict = interp.u64(value + TYPE_DICT, "a class's dict")?;
                    if dict != 0 {
                        let inner = format!("{prefix}{}.", key_name(interp, key)?);
                        let _ = self.namespace(interp, dict, &inner, depth + 1);
                    }
                }
            }
        }
        Ok(())
    }

    /// A function found under `path` (its qualified name before 3.11, which has none of its own).
    fn function(&mut self, interp: &mut Interpreter, func: u64, path: &str) -> Result<()> {
        // `PyFunctionObject.func_code`: first before 3.10, after globals, builtins, name and
        // qualname (3.10's COMMON_FIELDS) from then on.
        let at = if interp.layout.row.version.minor <= 9 {
            16
        } else {
            48
        };
        let code = interp.u64(func + at, "func_code")?;
        self.code(interp, code, path, 0)
    }

    /// A code object and those nested in its `co_consts` (nested functions, lambdas, and
    /// before 3.12 comprehensions), each kept if a pattern matches it.
    fn code(
        &mut self,
        interp: &mut Interpreter,
        code: u64,
        path: &str,
        depth: usize,
    ) -> Result<()> {
        let l = interp.layout;
        let v = l.row.version;
        if code == 0 || !self.seen_codes.insert(code) {
            return Ok(());
        }
        let text = |interp: &Interpreter, at: u64| -> Result<String> {
            let obj = interp.u64(code + at, "a code object's name")?;
            Ok(interp
                .str_text(obj, 4096)?
                .map(|(t, _)| t)
                .unwrap_or_default())
        };
        let name = text(interp, l.row.code_name)?;
        let qualname = match l.row.code_qualname {
            Some(at) => text(interp, at)?,
            None => path.to_string(),
        };
        let file = text(interp, l.row.code_filename)?;
        if self
            .patterns
            .iter()
            .any(|p| p.matches(&file, &name, &qualname))
        {
            self.keep(interp, code, &name, &qualname, file)?;
        }
        if depth >= MAX_NESTING {
            return Ok(());
        }
        let consts = interp.u64(
            code + if v.minor <= 10 {
                CO_CONSTS_OLD
            } else {
                CO_CONSTS
            },
            "co_consts",
        )?;
        if consts == 0 {
            return Ok(());
        }
        let n = interp
            .u64(consts + 16, "co_consts' length")?
            .min(MAX_CONSTS);
        let raw = interp.bytes(
            consts + u64::from(l.objects.tuple_items),
            n * 8,
            "co_consts",
        )?;
        for item in raw.chunks_exact(8) {
            let c = u64::from_le_bytes(item.try_into().expect("8 bytes"));
            if c != 0 && &*interp.type_name(c)? == "code" {
                // Before 3.11 the path stands for the qualified name CPython would give it.
                let inner = text_of(interp, c + l.row.code_name).unwrap_or_default();
                let _ = self.code(
                    interp,
                    c,
                    &format!("{qualname}.<locals>.{inner}"),
                    depth + 1,
                );
            }
        }
        Ok(())
    }

    /// Keeps a matching code object with where its watchpoint goes.
    fn keep(
        &mut self,
        interp: &mut Interpreter,
        code: u64,
        name: &str,
        qualname: &str,
        file: String,
    ) -> Result<()> {
        let l = interp.layout;
        let v = l.row.version;
        let line = interp.u32(code + l.row.code_firstlineno, "co_firstlineno")? as i32;
        let (unit, loops_to_start, shared) = if v.minor <= 10 {
            let bytes = interp.u64(code + CO_CODE, "co_code")?;
            let (ops, _) = interp.bytes_object(bytes, 1 << 20)?;
            let refs = interp.u64(bytes, "co_code's reference count")?;
            (
                bytes + u64::from(l.objects.bytes_data),
                jumps_to_start(&ops),
                refs > 1,
            )
        } else {
            (code + l.walk.code_adaptive, false, false)
        };
        self.found.push(Found {
            code,
            unit,
            // As the other sources name it (`co_name`): a source chosen by auto is not seen
            // in the report's names.
            name: name.to_string(),
            qualname: qualname.to_string(),
            file,
            line,
            loops_to_start,
            shared,
        });
        Ok(())
    }
}

/// The text of the str a pointer at `at` points to.
fn text_of(interp: &Interpreter, at: u64) -> Result<String> {
    let obj = interp.u64(at, "a code object's name")?;
    Ok(interp
        .str_text(obj, 4096)?
        .map(|(t, _)| t)
        .unwrap_or_default())
}

fn key_name(interp: &Interpreter, key: u64) -> Result<String> {
    Ok(interp
        .str_text(key, 256)?
        .map(|(t, _)| t)
        .unwrap_or_default())
}

/// Whether 3.8-3.10 bytecode has a jump to offset 0: the absolute jumps (`JUMP_ABSOLUTE`,
/// `POP_JUMP_IF_*`, `JUMP_IF_*_OR_POP`, `JUMP_IF_NOT_EXC_MATCH`) with argument 0 and no
/// `EXTENDED_ARG` before them (3.8-3.9 count in bytes, 3.10 in units: 0 either way). Relative
/// jumps only go forward before 3.11.
fn jumps_to_start(ops: &[u8]) -> bool {
    const EXTENDED_ARG: u8 = 144;
    const ABSOLUTE: [u8; 6] = [111, 112, 113, 114, 115, 121];
    let mut extended = false;
    for unit in ops.chunks_exact(2) {
        let (op, arg) = (unit[0], unit[1]);
        if ABSOLUTE.contains(&op) && arg == 0 && !extended {
            return true;
        }
        extended = op == EXTENDED_ARG;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_back_to_the_start_is_seen() {
        // 3.9, `def f():\n while True: g()`: LOAD_GLOBAL 0; CALL_FUNCTION 0; POP_TOP;
        // JUMP_ABSOLUTE 0.
        assert!(jumps_to_start(&[116, 0, 131, 0, 1, 0, 113, 0]));
        // `def f(): return g()`: no jump.
        assert!(!jumps_to_start(&[116, 0, 131, 0, 83, 0]));
        // A jump to 256 (EXTENDED_ARG 1; JUMP_ABSOLUTE 0) is not to the start.
        assert!(!jumps_to_start(&[144, 1, 113, 0]));
        // A forward conditional jump elsewhere: POP_JUMP_IF_FALSE 8.
        assert!(!jumps_to_start(&[124, 0, 114, 8, 100, 0, 83, 0]));
    }
}
