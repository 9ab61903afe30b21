//! pyprobe: eBPF tracing of live CPython processes through CPython's own USDT probes.
pub mod bpf;
pub mod cli;
pub mod commands;
pub mod count;
pub mod elf;
pub mod error;
pub mod filter;
pub mod glob;
pub mod histogram;
pub mod imports;
pub mod lines;
pub mod losses;
pub mod output;
pub mod process;
pub mod requirements;
pub mod target;
pub mod versions;
