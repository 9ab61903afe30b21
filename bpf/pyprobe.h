/* The one definition of every key, value, event and limit shared by the BPF programs and Rust. */
#ifndef PYPROBE_H
#define PYPROBE_H

/* Function names are kept whole up to NAME_LEN-1 bytes; longer ones are flagged truncated. */
#define NAME_LEN 64
/* File paths keep their last FILE_LEN-1 bytes: the end of a path is what tells files apart. */
#define FILE_LEN 128
/* Scratch room for reading a whole path before keeping its tail. */
#define PATH_SCRATCH 512
#define MAX_FILTERS 8
/* Calls nested deeper than this in one thread are counted but not timed. */
#define MAX_DEPTH 256
/* Log-linear latency buckets: 16 per power of two, so a bucket is at most 1/16 wide. */
#define HIST_SUB_BITS 4
#define HIST_BUCKETS (64 << HIST_SUB_BITS)

/*
 * A function is its code object; the name pointer guards against a freed code object's reuse.
 * Where the code object cannot be reached, code holds the file pointer and lineno the line seen
 * at entry (the def line of a fresh call).
 */
struct fn_key {
	__u64 code;
	__u64 name_ptr;
	__u32 lineno;
	__u32 pad;
};

struct fn_stats {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	__u64 timed;
};

/*
 * pycount's direct-mapped cache in front of the function table: an array slot per hash of the
 * code object, so the common call costs an inlined array access instead of a hash lookup.
 * A function's statistics are the sum of its slot's and its table entry's.
 */
#define FN_SLOTS 4096

struct fn_slot {
	__u64 code;
	__u64 name_ptr; /* written last: a slot is live once this matches */
	__u32 id;
	__u8 matched;
	__u8 pad[3];
	struct fn_stats stats;
};

/* Where a probe keeps its name argument, when it is a plain register (x86-64). */
enum arg_reg {
	ARG_REG_NONE = 0,
	ARG_REG_RAX, ARG_REG_RBX, ARG_REG_RCX, ARG_REG_RDX, ARG_REG_RSI, ARG_REG_RDI, ARG_REG_RBP,
	ARG_REG_R8, ARG_REG_R9, ARG_REG_R10, ARG_REG_R11, ARG_REG_R12, ARG_REG_R13, ARG_REG_R14, ARG_REG_R15,
};

struct fn_entry {
	__u32 id;
	__u32 firstlineno;
	__u8 matched;
	__u8 name_truncated;
	__u8 file_truncated;
	__u8 pad[5];
	char name[NAME_LEN];
	char file[FILE_LEN];
	struct fn_stats stats;
};

struct hist_key {
	__u32 fn_id;
	__u32 bucket;
};

/* One --filter pattern: NAME or NAME* optionally restricted to paths ending in /FILE. */
struct name_filter {
	char name[NAME_LEN];
	char file[FILE_LEN];
	__u32 name_len;
	__u32 file_len;
	__u8 name_prefix;
	__u8 pad[7];
};

/* Per-thread stack of entries (time and function key), to pair them with returns. */
#define STACK_SLOTS 256

struct call_stack {
	__u32 depth;
	__u32 tid; /* owner, in the direct-mapped array of stacks; 0 when free */
	__u64 ts[MAX_DEPTH];
	__u64 name_ptr[MAX_DEPTH];
	__u64 code[MAX_DEPTH];
	__u32 lineno[MAX_DEPTH];
};

/* Everything that was not recorded, so that nothing is lost silently. */
struct loss_counters {
	__u64 functions_full;
	__u64 hist_full;
	__u64 threads_full;
	__u64 too_deep;
	__u64 unpaired_returns;
	__u64 code_read_errors;
	__u64 events_lost;
	__u64 gc_unpaired;
};

/* Where the current code object lives, per CPython version; all zero when unknown. */
struct frame_layout {
	__u64 runtime_addr;
	__u32 tstate_current;
	__u32 cframe;
	__u32 current_frame;
	__u32 f_code;
	__u32 co_firstlineno;
	/* x86-64 builds whose probe site keeps the frame in rbx (checked at run time, see below). */
	__u32 frame_in_rbx;
};

#define GC_GENERATIONS 3

struct gc_gen_stats {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	__u64 collected;
	__u64 hist[HIST_BUCKETS];
};

struct gc_start {
	__u64 ts;
	__s32 generation;
	__u32 pad;
};

/* A pause at least --min-pause long, streamed as it happens. */
struct gc_event {
	__u64 ts;
	__u64 duration_ns;
	__s64 collected;
	__u32 pid;
	__u32 tid;
	__s32 generation;
	__u32 pad;
};

#endif
