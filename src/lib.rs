//! pyprobe: eBPF tracing of live CPython processes through CPython's own USDT probes.
//! ARCHITECTURE.md maps the modules and the one-way flow between them.
pub mod audit;
pub mod cli;
pub mod count;
pub mod error;
pub mod filter;
pub mod floor;
pub mod flow;
pub mod function;
pub mod gc;
pub mod glob;
pub mod histogram;
pub mod imports;
pub mod kernel;
pub mod lines;
pub mod losses;
pub mod output;
pub mod privileges;
pub mod probes;
pub mod session;
pub mod signals;
pub mod source;
pub mod target;
pub mod tools;
pub mod tracee;
pub mod trampoline;
pub mod versions;
