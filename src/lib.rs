//! pyprobe: eBPF tracing of live CPython processes through CPython's own USDT probes.
//! ARCHITECTURE.md maps the layers; tests/layers.rs keeps every reference pointing down.
pub mod abi;
pub mod cli;
pub mod commands;
pub mod cpython;
pub mod error;
pub mod escape;
pub mod kernel;
pub mod output;
pub mod sample;
pub mod session;
pub mod signals;
pub mod source;
pub mod target;
pub mod trace;
pub mod versions;
