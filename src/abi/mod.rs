//! The BPF ABI: the generated skeletons, the one Rust view of `bpf/pyprobe.h` (types, limits
//! and record kinds as the skeleton generated them), and record decoding. The bottom of the
//! kernel side: everything that names a shared type or limit depends on this, not on `kernel`.
/// The generated skeletons, one per `bpf/*.bpf.c`.
#[allow(
    clippy::all,
    unsafe_op_in_unsafe_fn,
    dead_code,
    non_camel_case_types,
    unused_imports
)]
pub mod skel {
    macro_rules! skeleton {
        ($($name:ident),*) => {$(
            pub mod $name {
                include!(concat!(env!("OUT_DIR"), "/", stringify!($name), ".skel.rs"));
            }
        )*};
    }
    skeleton!(
        agent, audit, children, count, exceptions, floor, flow, gc, imports, lines, sample, types
    );
}

/// The one Rust view of `bpf/pyprobe.h`: bpf/types.bpf.c names every shared type, and its
/// skeleton's generated copies are the ones Rust decodes with. (Each skeleton generates its
/// own copy of the types its variables use; `same_struct` converts those.)
pub mod types {
    pub use super::skel::types::types::{
        agent_gc_key as AgentGcKey, agent_gc_stats as AgentGcStats, agent_hist as AgentHist,
        arg_kind as ArgKind, arg_reg as ArgReg, audit_decoder as AuditDecoder,
        audit_event as AuditEvent, audit_value as AuditValue, eval_layout as EvalLayout,
        exc_event as ExcEvent, exc_flight as ExcFlight, exc_key as ExcKey, exc_layout as ExcLayout,
        flow_event as FlowRecord, flow_kind as FlowKind, fn_entry as FnEntry, fn_key as FnKey,
        fn_slot as FnSlot, frame_layout as FrameLayout, gc_event as GcEvent,
        gc_gen_stats as GcGenStats, glob_pattern as GlobPattern, hist_key as HistKey,
        import_event as ImportEvent, import_stack as ImportStack, line_file as LineFile,
        line_key as LineKey, loss_counters as LossCounters, name_filter as NameFilter,
        object_layout as ObjectLayout, pyprobe_limit as Limit, qualname_layout as QualnameLayout,
        sample_key as SampleKey, source_config as SourceConfig, stack_frame as StackFrame,
        stack_layout as StackLayout, stack_record as StackRecord, text_encoding as TextEncoding,
        wp_key as WpKey,
    };

    // SAFETY: generated `#[repr(C)]` structs of integers and arrays, valid for any bytes.
    unsafe impl plain::Plain for AgentGcKey {}
    unsafe impl plain::Plain for AgentGcStats {}
    unsafe impl plain::Plain for AgentHist {}
    unsafe impl plain::Plain for AuditEvent {}
    unsafe impl plain::Plain for ExcEvent {}
    unsafe impl plain::Plain for ExcFlight {}
    unsafe impl plain::Plain for ExcKey {}
    unsafe impl plain::Plain for FlowRecord {}
    unsafe impl plain::Plain for FnEntry {}
    unsafe impl plain::Plain for FnKey {}
    unsafe impl plain::Plain for FnSlot {}
    unsafe impl plain::Plain for GcEvent {}
    unsafe impl plain::Plain for GcGenStats {}
    unsafe impl plain::Plain for HistKey {}
    unsafe impl plain::Plain for WpKey {}
    unsafe impl plain::Plain for ImportEvent {}
    unsafe impl plain::Plain for ImportStack {}
    unsafe impl plain::Plain for LineFile {}
    unsafe impl plain::Plain for LineKey {}
    unsafe impl plain::Plain for SampleKey {}
    unsafe impl plain::Plain for StackRecord {}
}

/// The limits of `enum pyprobe_limit`, as sizes.
pub mod limits {
    use super::types::Limit;

    /// `pub const NAME: usize` for each limit of that name.
    macro_rules! sizes {
        ($($name:ident),+) => {
            $(pub const $name: usize = Limit::$name.0 as usize;)+
        };
    }
    sizes! {
        NAME_LEN, FILE_LEN, PATH_SCRATCH, MAX_FILTERS, MAX_DEPTH, FN_SLOTS, GC_GENERATIONS,
        GLOB_LEN, MAX_GLOBS, MAX_IMPORT_DEPTH, ARG_LEN, AUDIT_ARGS, EVENT_LEN, MAX_DECODED_EVENTS,
        FLOW_MAX_DEPTH, MAX_STACK_DEPTH, AGENT_BUCKETS
    }
    pub const HIST_SUB_BITS: u32 = Limit::HIST_SUB_BITS.0;
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

/// A skeleton's loss counters (`bss.losses`, in that skeleton's own type), read afresh: the
/// kernel updates them under us.
pub fn loss_counters<C: Copy>(counters: &C) -> types::LossCounters {
    // SAFETY: a struct of integers in memory the kernel writes; the volatile read takes it as
    // it is now instead of a value the compiler assumed unchanged.
    same_struct(&unsafe { std::ptr::read_volatile(counters) })
}

/// A NUL-terminated C char array as text (names may be UTF-8, possibly cut mid-character).
pub fn c_string(bytes: &[i8]) -> String {
    let b: Vec<u8> = bytes
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

/// Copies text into a C char array, NUL-padded (the caller checked that it fits).
pub fn to_c_chars<const N: usize>(text: &str) -> [i8; N] {
    let mut out = [0i8; N];
    for (d, b) in out.iter_mut().zip(text.bytes()) {
        *d = b as i8;
    }
    out
}

/// The current value of CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC: adds to a kernel timestamp to date it.
pub fn realtime_offset_ns() -> i128 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC)
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_the_header() {
        assert_eq!(limits::NAME_LEN, 64);
        assert_eq!(limits::FLOW_MAX_DEPTH, 1024);
        let e = types::FnEntry::default();
        assert_eq!(e.name.len(), limits::NAME_LEN);
        assert_eq!(e.file.len(), limits::FILE_LEN);
    }

    #[test]
    fn c_strings_round_trip() {
        let chars: [i8; 8] = to_c_chars("abc");
        assert_eq!(c_string(&chars), "abc");
        assert_eq!(chars[3], 0);
    }
}
