//! A live CPython interpreter: its state read from the target's memory (`pystate`), and code
//! run inside it (`trampoline`), by the per-version tables of `versions`.
pub mod pystate;
pub mod trampoline;
