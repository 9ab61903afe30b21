//! A live CPython interpreter: its state read from the target's memory (`pystate`), and code
//! run inside it (`trampoline`), by the per-version tables of `versions`; every thread held
//! still (`pause`) and its stack walked and named (`walk`); where it raises (`raised`).
pub mod pause;
pub mod pystate;
pub mod raised;
pub mod trampoline;
pub mod walk;
