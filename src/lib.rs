//! pyprobe: eBPF tracing of live CPython processes through CPython's own USDT probes.
pub mod bpf;
pub mod cli;
pub mod commands;
pub mod count;
pub mod elf;
pub mod error;
pub mod filter;
pub mod flow;
pub mod histogram;
pub mod losses;
pub mod output;
pub mod process;
pub mod target;
pub mod versions;
