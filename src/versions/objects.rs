//! Where CPython's objects keep what pyprobe reads, where it is the same in every version
//! 3.8-3.15 (x86-64): one place for the offsets and flags the readers of names, modules and
//! functions share (what moves between versions is in table.rs).

/// `PyModuleObject.md_dict`.
pub const MODULE_DICT: u64 = 16;
/// `PyTypeObject.tp_basicsize`, `tp_flags`, `tp_base`, `tp_dict` and `tp_dictoffset`.
pub const TYPE_BASICSIZE: u64 = 32;
pub const TYPE_FLAGS: u64 = 168;
pub const TYPE_BASE: u64 = 256;
pub const TYPE_DICT: u64 = 264;
pub const TYPE_DICTOFFSET: u64 = 288;
/// `PyDictObject.ma_used`, `ma_keys` and `ma_values`.
pub const DICT_USED: u64 = 16;
pub const DICT_KEYS: u64 = 32;
pub const DICT_VALUES: u64 = 40;
/// What the asyncio task reader follows: `PyWeakReference.wr_object`, `PyMethodObject.im_self`,
/// `PySetObject.mask` and `.table`, `PyListObject.ob_item`.
pub const WEAKREF_OBJECT: u64 = 16;
pub const METHOD_SELF: u64 = 24;
pub const SET_MASK: u64 = 32;
pub const SET_TABLE: u64 = 40;
pub const LIST_ITEMS: u64 = 24;
/// `tp_flags` bits: `Py_TPFLAGS_MANAGED_DICT` (3.11+: the instance's dict pointer sits before
/// the object), `Py_TPFLAGS_HEAPTYPE` (a class made by Python code), and the fast subclass
/// bits of `str` and `type`.
pub const TPFLAGS_MANAGED_DICT: u64 = 1 << 4;
pub const TPFLAGS_HEAPTYPE: u64 = 1 << 9;
pub const TPFLAGS_UNICODE_SUBCLASS: u64 = 1 << 28;
pub const TPFLAGS_TYPE_SUBCLASS: u64 = 1 << 31;
