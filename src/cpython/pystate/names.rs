//! The names a program gives its threads (`threading.Thread(name="worker-0")`), read from its
//! memory as py-spy does: `sys.modules["threading"]._active` maps each thread's ident to its
//! Thread object, whose `_name` (and `_native_id`, the kernel's thread id) are attributes.
use std::collections::HashMap;

use super::{Interpreter, MAX_INTERPRETERS};
use crate::error::{Error, Result};
use crate::versions::DictEntries;
use crate::versions::objects::{
    DICT_KEYS, DICT_VALUES, MODULE_DICT, TPFLAGS_HEAPTYPE, TPFLAGS_MANAGED_DICT, TYPE_BASICSIZE,
    TYPE_DICTOFFSET, TYPE_FLAGS,
};

/// One thread `threading` knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonThread {
    pub name: String,
    /// `Thread._native_id`: the kernel's thread id as the target's pid namespace sees it.
    pub native_id: Option<u32>,
}

/// No dict read here (the modules, a module's globals, the live threads, an instance's
/// attributes) has more entries; one that says so is not what pyprobe expects, and is read no
/// further than this.
const MAX_ENTRIES: u64 = 1 << 16;
/// Characters of a thread's name kept.
const MAX_NAME: u64 = 256;

impl Interpreter {
    /// The threads `threading` knows in every interpreter of the process, by ident
    /// (`threading.get_ident()`, the thread state's `thread_id`). Empty where `threading` was
    /// never imported; an error where memory is not what pyprobe expects.
    pub fn thread_names(&mut self) -> Result<HashMap<u64, PythonThread>> {
        let l = self.layout;
        let mut found = HashMap::new();
        let mut interp = self.u64(self.runtime + l.interpreters_head, "interpreters.head")?;
        for _ in 0..MAX_INTERPRETERS {
            if interp == 0 {
                break;
            }
            let modules = self.u64(interp + l.interp_modules, "sys.modules")?;
            if modules != 0 {
                self.threads_of(modules, &mut found)?;
            }
            interp = self.u64(interp + l.walk.interp_next, "interp->next")?;
        }
        Ok(found)
    }

    fn threads_of(&mut self, modules: u64, found: &mut HashMap<u64, PythonThread>) -> Result<()> {
        self.expect(modules, "dict", "sys.modules")?;
        let Some(threading) = self.lookup(modules, "threading")? else {
            return Ok(());
        };
        if &*self.type_name(threading)? != "module" {
            return Ok(());
        }
        let globals = self.u64(threading + MODULE_DICT, "threading.__dict__")?;
        let Some(active) = self.lookup(globals, "_active")? else {
            return Ok(());
        };
        self.expect(active, "dict", "threading._active")?;
        for (ident, thread) in self.dict_items(active)? {
            let Some(ident) = self.int_value(ident)? else {
                continue;
            };
            let Some(name) = self.attribute(thread, "_name")? else {
                continue;
            };
            let Some((name, _)) = self.str_text(name, MAX_NAME)? else {
                continue;
            };
            let native_id = match self.attribute(thread, "_native_id")? {
                Some(n) => self.int_value(n)?.and_then(|n| u32::try_from(n).ok()),
                None => None,
            };
            found.insert(ident as u64, PythonThread { name, native_id });
        }
        Ok(())
    }

    pub(super) fn expect(&mut self, obj: u64, type_name: &str, what: &str) -> Result<()> {
        let found = self.type_name(obj)?;
        if &*found == type_name {
            return Ok(());
        }
        Err(Error::Unreadable(format!(
            "found a {found:?} where {what} should be (not the layout pyprobe expects)"
        )))
    }

    /// An int's value where it fits (None for another type or a huge int).
    pub(super) fn int_value(&mut self, obj: u64) -> Result<Option<i128>> {
        if &*self.type_name(obj)? != "int" {
            return Ok(None);
        }
        super::values::int(self, obj)
    }

    /// The value of the str key `key` in a dict.
    pub(super) fn lookup(&mut self, dict: u64, key: &'static str) -> Result<Option<u64>> {
        let keys = self.u64(dict + DICT_KEYS, "ma_keys")?;
        let values = self.u64(dict + DICT_VALUES, "ma_values")?;
        if values != 0 {
            return self.split_value(keys, values, key);
        }
        let mut items = self.entries(keys)?;
        items.retain(|&(k, v)| k != 0 && v != 0);
        self.find(&items, key)
    }

    /// The value of `key` in a split table: keys shared by the instances of a type, values of
    /// one instance. Where the key is in the keys is looked up once per keys object (every
    /// Thread of a process shares one), so each further thread costs two reads.
    fn split_value(&mut self, keys: u64, values: u64, key: &'static str) -> Result<Option<u64>> {
        let slot = match self.key_slots.get(&(keys, key)) {
            Some(&slot) => slot,
            None => {
                let entries = self.entries(keys)?;
                let mut slot = None;
                for (i, &(k, _)) in entries.iter().enumerate() {
                    if k != 0
                        && self
                            .str_text(k, key.len() as u64 + 1)?
                            .is_some_and(|(t, _)| t == key)
                    {
                        slot = Some(i as u64);
                        break;
                    }
                }
                self.key_slots.insert((keys, key), slot);
                slot
            }
        };
        let Some(slot) = slot else {
            return Ok(None);
        };
        // 3.13+'s values begin with a header of 8 bytes (capacity, size, embedded, valid).
        let first = if self.layout.row.version.minor >= 13 {
            8
        } else {
            0
        };
        let value = self.u64(values + first + 8 * slot, "an attribute's value")?;
        Ok((value != 0).then_some(value))
    }

    fn find(&mut self, items: &[(u64, u64)], key: &str) -> Result<Option<u64>> {
        for &(k, v) in items {
            let max = key.len() as u64 + 1;
            if self.str_text(k, max)?.is_some_and(|(t, _)| t == key) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// An instance attribute, from wherever the version keeps the instance's attributes: its
    /// dict (`tp_dictoffset`, or 3.11+'s managed dict before the object), or values without a
    /// dict whose keys its type shares (3.11, 3.12: a pointer before the object; 3.13+: inline
    /// after it).
    pub(super) fn attribute(&mut self, obj: u64, name: &'static str) -> Result<Option<u64>> {
        let minor = self.layout.row.version.minor;
        let ty = self.u64(obj + 8, "ob_type")?;
        let flags = self.u64(ty + TYPE_FLAGS, "tp_flags")?;
        if minor <= 10 || flags & TPFLAGS_MANAGED_DICT == 0 {
            let offset = self.i64(ty + TYPE_DICTOFFSET, "tp_dictoffset")?;
            if offset <= 0 {
                return Ok(None);
            }
            let dict = self.u64(obj + offset as u64, "an instance's dict")?;
            return if dict == 0 {
                Ok(None)
            } else {
                self.lookup(dict, name)
            };
        }
        let slot = self.u64(obj - 24, "an instance's managed dict")?;
        let values = match minor {
            11 if slot == 0 => self.u64(obj - 32, "an instance's values")?,
            // PyDictOrValues: the values' address minus one, tagged by its low bit.
            12 if slot & 1 == 1 => slot + 1,
            _ if slot != 0 => return self.lookup(slot, name),
            // 3.13+: inline values after the object, valid while it has no dict.
            _ if minor >= 13 => {
                let at = obj + self.u64(ty + TYPE_BASICSIZE, "tp_basicsize")?;
                let header = self.u64(at, "inline values")?;
                if (header >> 24) & 0xff == 0 {
                    return Ok(None);
                }
                at
            }
            _ => 0,
        };
        if values == 0 || flags & TPFLAGS_HEAPTYPE == 0 {
            return Ok(None);
        }
        let keys = self.u64(ty + self.layout.row.type_cached_keys, "ht_cached_keys")?;
        if keys == 0 {
            return Ok(None);
        }
        self.split_value(keys, values, name)
    }

    /// A combined dict's (key, value) pairs, deleted ones skipped (a split dict, an
    /// instance's attributes, is read by `lookup`).
    pub(super) fn dict_items(&self, dict: u64) -> Result<Vec<(u64, u64)>> {
        let keys = self.u64(dict + DICT_KEYS, "ma_keys")?;
        let mut items = self.entries(keys)?;
        items.retain(|&(k, v)| k != 0 && v != 0);
        Ok(items)
    }

    /// The (key, value) entries of a dict's keys object in order, deleted and empty ones
    /// included: entry i of split keys is value i of each instance.
    fn entries(&self, keys: u64) -> Result<Vec<(u64, u64)>> {
        if keys == 0 {
            return Ok(Vec::new());
        }
        let header = self.bytes(keys, 40, "dict keys")?;
        let d = DictEntries::of(keys, &header, self.layout.row.version.minor >= 11)
            .ok_or_else(|| Error::Unreadable("a dict of impossible size".into()))?;
        let len = d.len(MAX_ENTRIES);
        if len == 0 {
            return Ok(Vec::new());
        }
        Ok(d.pairs(&self.bytes(d.at, len, "dict entries")?))
    }
}
