//! The kernel side: skeletons loaded (`load`), links attached (`Probes`), ring buffers and
//! entries read, processes' inheritance of probes, and what running the probes costs
//! (`overhead`). The types and limits they carry are in `abi`.
mod entries;
pub mod inherit;
mod links;
mod loaded;
pub mod overhead;
pub mod perf;
pub mod private_code;
mod ring;

pub use entries::entries;
pub use links::Probes;
pub use loaded::{Loaded, globals, load, size};
pub use ring::Ring;
