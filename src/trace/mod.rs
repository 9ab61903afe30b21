//! What every trace is made of, above the BPF ABI: a function's identity and its calls,
//! `--filter` and glob patterns, latency histograms, and the losses the kernel side counts.
pub mod calls;
pub mod filter;
pub mod function;
pub mod glob;
pub mod histogram;
pub mod losses;
