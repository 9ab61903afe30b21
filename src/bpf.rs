//! The generated BPF skeletons, the shared record types, and the `Plain` impls that let Rust
//! read those records out of maps and ring buffers.
#![allow(
    clippy::all,
    unsafe_op_in_unsafe_fn,
    dead_code,
    non_camel_case_types,
    unused_imports
)]

pub mod calls {
    include!(concat!(env!("OUT_DIR"), "/calls.skel.rs"));
}

pub mod floor {
    include!(concat!(env!("OUT_DIR"), "/floor.skel.rs"));
}

pub mod gc {
    include!(concat!(env!("OUT_DIR"), "/gc.skel.rs"));
}

pub mod audit {
    include!(concat!(env!("OUT_DIR"), "/audit.skel.rs"));
}

pub mod imports {
    include!(concat!(env!("OUT_DIR"), "/imports.skel.rs"));
}

pub mod lines {
    include!(concat!(env!("OUT_DIR"), "/lines.skel.rs"));
}

pub mod flow {
    include!(concat!(env!("OUT_DIR"), "/flow.skel.rs"));
}

/// The one Rust view of `bpf/pyprobe.h`; every skeleton compiles the same header.
pub mod types {
    pub use super::calls::types::{
        fn_entry as FnEntry, fn_key as FnKey, fn_slot as FnSlot, fn_stats as FnStats,
        frame_layout as FrameLayout, hist_key as HistKey, loss_counters as LossCounters,
        name_filter as NameFilter,
    };

    // SAFETY: generated `#[repr(C)]` structs of integers and arrays, valid for any bytes.
    unsafe impl plain::Plain for FnEntry {}
    unsafe impl plain::Plain for FnKey {}
    unsafe impl plain::Plain for FnSlot {}
    unsafe impl plain::Plain for HistKey {}

    pub use super::flow::types::flow_event as FlowRecord;
    // SAFETY: as above.
    unsafe impl plain::Plain for FlowRecord {}
    // pygc
    pub use super::gc::types::{gc_event as GcEvent, gc_gen_stats as GcGenStats};
    unsafe impl plain::Plain for GcEvent {}
    unsafe impl plain::Plain for GcGenStats {}
}

/// Records of pyprobe lines, imports and audit (each skeleton generates its own copy).
pub mod probe_types {
    pub use super::audit::types::{audit_event as AuditEvent, audit_value as AuditValue};
    pub use super::imports::types::{import_event as ImportEvent, import_stack as ImportStack};
    pub use super::lines::types::{line_file as LineFile, line_key as LineKey};

    // SAFETY: generated `#[repr(C)]` structs of integers and arrays, valid for any bytes.
    unsafe impl plain::Plain for AuditEvent {}
    unsafe impl plain::Plain for ImportEvent {}
    unsafe impl plain::Plain for ImportStack {}
    unsafe impl plain::Plain for LineFile {}
    unsafe impl plain::Plain for LineKey {}
}

/// Reads a record of type `T` out of map or ring-buffer bytes.
pub fn record<T: plain::Plain + Default>(bytes: &[u8]) -> T {
    let mut out = T::default();
    plain::copy_from_bytes(&mut out, bytes).expect("record shorter than its type");
    out
}

/// The same `bpf/pyprobe.h` struct as another skeleton generated it: each skeleton has its own
/// Rust copy of the shared types, with one C layout.
pub fn same_struct<A: Copy, B: Copy>(a: &A) -> B {
    assert_eq!(std::mem::size_of::<A>(), std::mem::size_of::<B>());
    // SAFETY: both are `#[repr(C)]` translations of one C struct (sizes checked above), made of
    // integers and arrays, valid for any bytes.
    unsafe { std::mem::transmute_copy(a) }
}
