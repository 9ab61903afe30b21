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
struct call_stack {
	__u32 depth;
	__u32 pad;
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
	__u32 pad;
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

/* ---- pyflow ---- */

/* pyflow's per-thread stack is deeper than pycount's: Python's default recursion limit is 1000. */
#define FLOW_MAX_DEPTH 1024
/* How far below the top a return looks for its frame when returns can go missing (3.15). */
#define FLOW_UNWIND_SEARCH 8

/* FLOW_ENTRY and FLOW_RETURN stream as they happen; FLOW_CALL (--min-duration) is sent at the
 * return, with the entry's time, once the duration is known. */
#define FLOW_ENTRY 1
#define FLOW_RETURN 2
#define FLOW_CALL 3
/* A return inferred for a frame that exited without firing its probe (3.15 exceptions). */
#define FLOW_UNWOUND 4

struct flow_event {
	__u64 ts;
	__u64 duration_ns;
	__u32 pid;
	__u32 tid;
	__u32 fn_id;
	/* Shown calls around this one in its thread: the indentation. */
	__u32 depth;
	__u32 kind;
	__u32 pad;
};

#define FLOW_FRAME_SHOWN 1
#define FLOW_FRAME_MATCHED 2

struct flow_frame {
	__u64 ts;
	/* What pairs a return with this entry: the frame address where known, else the name pointer. */
	__u64 pair;
	__u32 fn_id;
	__u32 flags;
};

struct flow_stack {
	__u32 depth;
	/* Frames on the stack that are shown, and that match --filter (for --subtree). */
	__u32 shown;
	__u32 matched;
	__u32 pad;
	struct flow_frame frames[FLOW_MAX_DEPTH];
};

#endif
