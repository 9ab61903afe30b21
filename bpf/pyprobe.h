/* The one definition of every key, value, record, enum and limit shared by the BPF programs and Rust. */
#ifndef PYPROBE_H
#define PYPROBE_H

/*
 * Every size and limit shared with Rust, declared once: libbpf-cargo generates this enum into
 * each skeleton's types, and src/kernel reads the values from there.
 */
enum pyprobe_limit {
	/* Function names are kept whole up to NAME_LEN-1 bytes; longer ones are flagged truncated. */
	NAME_LEN = 64,
	/* File paths keep their last FILE_LEN-1 bytes: the end of a path is what tells files apart. */
	FILE_LEN = 128,
	/* Scratch room for a path's last PATH_SCRATCH-1 bytes, against which globs are matched. */
	PATH_SCRATCH = 512,
	/* A path's end is looked for this many times PATH_SCRATCH-1 bytes far (4 KiB: PATH_MAX). */
	PATH_CHUNKS = 8,
	MAX_FILTERS = 8,
	/* Calls nested deeper than this in one thread are counted but not timed. */
	MAX_DEPTH = 256,
	/* Log-linear latency buckets: 16 per power of two, so a bucket is at most 1/16 wide. */
	HIST_SUB_BITS = 4,
	HIST_BUCKETS = 64 << 4,
	/* pycount's direct-mapped cache of functions, and of threads' stacks. */
	FN_SLOTS = 4096,
	STACK_SLOTS = 256,
	GC_GENERATIONS = 3,
	/* Globs (--file, --event): '*' any run of bytes, '?' one byte; a few per filter. */
	GLOB_LEN = 64,
	MAX_GLOBS = 4,
	/* imports: module names are kept up to MODULE_LEN-1 bytes. */
	MODULE_LEN = 128,
	MAX_IMPORT_DEPTH = 32,
	/* audit: an event name and the leading arguments of the events pyprobe decodes. */
	EVENT_LEN = 64,
	AUDIT_ARGS = 4,
	/* Items of a list or tuple argument (a command line, an address) decoded after it. */
	AUDIT_ITEMS = 6,
	ARG_LEN = 128,
	TYPE_NAME_LEN = 24,
	MAX_DECODED_EVENTS = 16,
	/* pyflow's per-thread stack is deeper than pycount's: Python's default recursion limit is 1000. */
	FLOW_MAX_DEPTH = 1024,
	/* How far below the top a return looks for its frame when returns can go missing (3.15). */
	UNWIND_SEARCH = 8,
	/* Sampled stacks keep their innermost MAX_STACK_DEPTH frames; deeper ones are counted. */
	MAX_STACK_DEPTH = 128,
	/* Thread states the kernel looks through to find the sampled thread's (all interpreters). */
	MAX_THREAD_WALK = 256,
	/* pyprobe agent: Prometheus histogram buckets, the last one above every bound (+Inf). */
	AGENT_BUCKETS = 20,
};

/*
 * A function is its code object, with its name pointer and def line (co_firstlineno): a code
 * object freed and its address reused by another keeps neither, mostly (its name string may be
 * freed and reused too, which the def line still tells apart). Where the code object cannot be
 * reached, code holds the file pointer and lineno the line seen at entry (the def line of a
 * fresh call). With --subprocesses, pid is the process's: a fork copies the code objects to the
 * same addresses, and each process's calls are counted apart (0 otherwise).
 */
struct fn_key {
	__u64 code;
	__u64 name_ptr;
	__u32 lineno;
	__u32 pid;
};

struct fn_stats {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	__u64 timed;
	/* Own (exclusive) time: each timed call's duration minus its paired callees'. */
	__u64 own_ns;
};

/*
 * pycount's direct-mapped cache in front of the function table: an array slot per hash of the
 * code object, so the common call costs an inlined array access instead of a hash lookup.
 * A function's statistics are the sum of its slot's and its table entry's.
 */

struct fn_slot {
	__u64 code;
	__u64 name_ptr; /* written last: a slot is live once this matches */
	__u32 lineno;
	__u32 id;
	__u8 matched;
	__u8 generator;
	__u8 pad[6];
	struct fn_stats stats;
};

/* Where a probe keeps its name argument, when it is a plain register (x86-64). */
enum arg_reg {
	ARG_REG_NONE = 0,
	ARG_REG_RAX, ARG_REG_RBX, ARG_REG_RCX, ARG_REG_RDX, ARG_REG_RSI, ARG_REG_RDI, ARG_REG_RBP,
	ARG_REG_R8, ARG_REG_R9, ARG_REG_R10, ARG_REG_R11, ARG_REG_R12, ARG_REG_R13, ARG_REG_R14, ARG_REG_R15,
};

/* How a name or path is stored: as UTF-8 (ASCII, or what the USDT probes pass), or as a
 * non-ASCII str's code units of this many bytes, which userspace decodes. */
enum text_encoding {
	TEXT_UTF8 = 0,
	TEXT_LATIN1 = 1,
	TEXT_UCS2 = 2,
	TEXT_UCS4 = 4,
};

struct fn_entry {
	__u32 id;
	__u32 firstlineno;
	__u8 matched;
	__u8 name_truncated;
	__u8 file_truncated;
	/* A generator, coroutine or async generator: its eval-frame entry owned by the thread is
	 * the call that creates it, which cProfile does not count (3.11+). */
	__u8 generator;
	__u8 name_encoding;
	__u8 file_encoding;
	/* Bytes of name and file that hold text (code units may contain NUL bytes). */
	__u8 name_bytes;
	__u8 file_bytes;
	char name[NAME_LEN];
	char file[FILE_LEN];
	struct fn_stats stats;
};

struct hist_key {
	__u32 fn_id;
	__u32 bucket;
};

/* A data watchpoint's hit (src/source/watch/): the unit watched and the instruction after
 * the access. */
struct wp_key {
	__u64 addr;
	__u64 ip;
};

/*
 * One --filter pattern: NAME or NAME* optionally restricted to paths ending in /FILE. A
 * qualified NAME (dotted: Class.method) is matched against the code object's co_qualname.
 */
struct name_filter {
	char name[NAME_LEN];
	char file[FILE_LEN];
	__u32 name_len;
	__u32 file_len;
	__u8 name_prefix;
	__u8 qualified;
	__u8 pad[6];
};

/* Per-thread stack of entries (time and function key), to pair them with returns. */

struct call_stack {
	__u32 depth;
	__u32 tid; /* owner, in the direct-mapped array of stacks; 0 when free */
	__u64 ts[MAX_DEPTH];
	/* What pairs a return with its entry: the name pointer (USDT), or the stack pointer at
	 * the call (eval-frame: a return whose entry is deeper in the stack than the top's must
	 * belong to a frame below, and the ones above exited unseen). */
	__u64 pair[MAX_DEPTH];
	__u64 name_ptr[MAX_DEPTH];
	__u64 code[MAX_DEPTH];
	__u32 lineno[MAX_DEPTH];
	/* Time spent so far in each frame's returned callees: what its own time leaves out. */
	__u64 callees_ns[MAX_DEPTH];
};

/*
 * Everything any program could not record, so that nothing is lost silently: one struct for
 * all of them (each uses its own fields), named and worded once in src/trace/losses.rs.
 */
struct loss_counters {
	__u64 functions_full;
	__u64 hist_full;
	__u64 threads_full;
	__u64 too_deep;
	/* Ends whose start was not seen (running at attach): returns, GC pauses, imports. */
	__u64 unpaired_returns;
	__u64 gc_unpaired;
	__u64 unpaired_dones;
	__u64 code_read_errors;
	__u64 events_lost;
	/* Entries whose return never fired (3.15 exits by exception): counted, not timed. */
	__u64 exits_unseen;
	__u64 lines_full;
	__u64 files_full;
	/* Audit events whose name could not be read. */
	__u64 read_errors;
	/* Names (files, functions) taken from a file path longer than PATH_SCRATCH-1 bytes: kept,
	 * and matched, by its end. */
	__u64 paths_truncated;
	/* Samples not counted: the stack-count table was full. */
	__u64 samples_full;
	/* Samples whose stack was deeper than MAX_STACK_DEPTH: its innermost frames kept. */
	__u64 stacks_truncated;
	/* Samples whose frame chain could not be read to its end: the frames read are kept. */
	__u64 stack_read_errors;
};

/* The session switch (src/kernel/links.rs): programs attach disarmed and record nothing until
 * userspace arms them all in one store, and stop in one store before they are detached. */
struct control {
	__u32 armed;
	__u32 pad;
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

/*
 * The eval-frame source: a uprobe on _PyEval_EvalFrameDefault(tstate, frame, throwflag) sees
 * each frame the interpreter starts evaluating (every call on <= 3.10; with the perf trampoline
 * on 3.12+). Offsets per version from src/versions/table.rs.
 */
struct eval_layout {
	/* 3.6-3.8: (frame, throwflag), the frame in rdi; later (tstate, frame, throwflag): rsi. */
	__u32 frame_in_rdi;
	/* frame -> code object; 3.14+ tags it (a _PyStackRef): clear the bits of code_tag_mask. */
	__u32 f_code;
	__u64 code_tag_mask;
	/* 3.11+: the frame's owner byte (0: the thread's, 1: a generator's); 0 where there is
	 * none (<= 3.10, where a generator's creation never enters the function). */
	__u32 owner;
	__u32 co_flags;
	__u32 co_firstlineno;
	__u32 co_filename;
	__u32 co_name;
	/* PyASCIIObject: length at +16, state at +32; the characters of a compact ASCII str, and
	 * of any other compact str. */
	__u32 str_ascii_data;
	__u32 str_compact_data;
	/* The stack pointer at the call: rsp at the probe plus this (what the prologue pushed). */
	__u32 sp_adjust;
	/* 3.13's CALL_ALLOC_AND_ENTER_INIT: type -> _spec_cache.init (a function) -> func_code. */
	__u32 type_init;
	__u32 func_code;
	/*
	 * With CPython's perf trampoline, each code object is called through a stub of its own,
	 * made once and never freed or reused: the return address of the call identifies the
	 * function in one read of the stack. An address inside the interpreter file's code
	 * [interp_lo, interp_hi) is not a stub (a call made without the trampoline).
	 */
	__u32 trampoline;
	__u32 pad;
	__u64 interp_lo;
	__u64 interp_hi;
};

/*
 * Where a code object keeps its qualified name (co_qualname, 3.11+) and a str its characters,
 * read on first sight for a qualified --filter. All zero where the source has no code object
 * to read it from, or the version has no qualified names.
 */
struct qualname_layout {
	__u32 co_qualname;
	__u32 str_ascii_data;
	__u32 str_compact_data;
	__u32 pad;
};

/* What the programs are told of the function source chosen for this target (src/source/). */
struct source_config {
	struct eval_layout eval;
	/* The eval-frame source (the USDT probes otherwise). */
	__u8 eval_frame;
	__u8 pad0[7];
	struct frame_layout layout;
	/* Registers holding funcname at each probe, when userspace could tell (else ARG_REG_NONE). */
	__u32 name_reg_entry;
	__u32 name_reg_return;
	/* Count on entries, where returns are not exact; else on returns (3.11, where entries are
	 * the costly side). */
	__u8 count_on_entry;
	/* Returns can go missing (3.15 exits by exception): a return may pop frames above its own. */
	__u8 returns_may_miss;
	__u8 pad[6];
	struct qualname_layout qualname;
};

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

/* ---- pyprobe lines, imports, audit ---- */

/*
 * One glob compiled by src/trace/glob.rs into a bit-parallel automaton over its positions (at most
 * GLOB_LEN - 1, one bit each; runs of '*' are one position): bit j of byte[c] is set where
 * position j is the literal byte c, of any where it is '?', of star where it is '*'. A subject
 * is matched by one pass over its bytes whose work does not depend on the pattern, so that the
 * verifier walks the same short loop whatever the pattern (bpf/glob.bpf.h).
 */
struct glob_pattern {
	__u64 byte[256];
	__u64 any;
	__u64 star;
	/* The bit of the position after the last: set once the whole pattern matched. 0: unused. */
	__u64 accept;
};

/* lines: a source line is its file name pointer (co_filename's UTF-8) and line number. */
struct line_key {
	__u64 file_ptr;
	__u32 lineno;
	__u32 pad;
};

/* A file name seen by the line probe, named and glob-checked once per pointer. */
struct line_file {
	__u8 matched;
	__u8 file_truncated;
	__u8 pad[6];
	char file[FILE_LEN];
};


/* Per-thread stack of imports in progress, to pair starts with dones. */
struct import_stack {
	__u32 depth;
	__u32 pad;
	__u64 ts[MAX_IMPORT_DEPTH];
	__u64 module_ptr[MAX_IMPORT_DEPTH];
};

/* One finished import, sent when import__find__load__done fires. */
struct import_event {
	__u64 start_ns;
	__u64 end_ns;
	__u32 pid;
	__u32 tid;
	__u32 depth;
	__s32 found;
	__u8 module_truncated;
	__u8 pad[7];
	char module[MODULE_LEN];
};


/* What an argument turned out to be; the text says more for strings and bytes. */
enum arg_kind {
	ARG_ABSENT = 0,
	ARG_STR = 1,	   /* compact ASCII, or the cached UTF-8 of any str */
	ARG_STR_OTHER = 2, /* a str with neither: not decoded (non-ASCII) */
	ARG_BYTES = 3,
	ARG_INT = 4,
	ARG_INT_BIG = 5, /* an int wider than 60 bits: not decoded */
	ARG_SEQ = 6,	 /* a tuple or list: its first items follow in `items` */
	ARG_OTHER = 7,	 /* another type: only its type name */
	ARG_UNREADABLE = 8,
};

struct audit_value {
	__s64 num;	/* INT value; SEQ and STR/BYTES: full length */
	__u8 kind;
	__u8 truncated; /* text holds only the first ARG_LEN-1 bytes */
	__u8 pad[6];
	char type_name[TYPE_NAME_LEN];
	char text[ARG_LEN];
};

struct audit_event {
	__u64 ts;
	__u32 pid;
	__u32 tid;
	__u32 nargs;	/* length of the args tuple */
	__u8 decoded;	/* args were decoded (a security-relevant event) */
	__u8 name_truncated;
	__u8 pad[2];
	char name[EVENT_LEN];
	struct audit_value args[AUDIT_ARGS];
	/* Items of the one sequence argument decoded (seq_arg, -1 when none). */
	__s32 seq_arg;
	__u32 nitems;
	struct audit_value items[AUDIT_ITEMS];
};

/* Which events get their arguments decoded, and which argument's items to decode. */
struct audit_decoder {
	char name[EVENT_LEN];
	__u32 len;
	__u32 nargs;	 /* leading arguments to decode */
	__s32 seq_arg;	 /* the argument whose items to decode, or -1 */
	__u32 pad;
};

/*
 * Where CPython keeps what audit decoding reads, per version (src/versions/table.rs): offsets
 * into type, tuple, list, str, bytes and int objects; all zero when unknown (names only).
 */
struct object_layout {
	__u32 known;
	__u32 type_name;
	__u32 type_flags;
	__u32 tuple_items;
	__u32 list_items;
	__u32 str_state;
	__u32 str_ascii_data;
	__u32 str_utf8_len;
	__u32 str_utf8;
	__u32 bytes_data;
	__u32 long_digits;
	/* 0: ob_size holds sign and digit count (<= 3.11); 1: lv_tag (3.12+) */
	__u32 long_tagged;
};

/* ---- pyflow ---- */

/* What a flow record says. */
enum flow_kind {
	/* FLOW_ENTRY and FLOW_RETURN stream as they happen. */
	FLOW_ENTRY = 1,
	FLOW_RETURN = 2,
	/* --min-duration: a whole call, sent at its return with the entry's time. */
	FLOW_CALL = 3,
	/* A return inferred for a frame that exited without firing its probe (3.15 exceptions). */
	FLOW_UNWOUND = 4,
};

struct flow_event {
	__u64 ts;
	__u64 duration_ns;
	__u32 pid;
	__u32 tid;
	__u32 fn_id;
	/* Shown calls around this one in its thread: the indentation. */
	__u32 depth;
	enum flow_kind kind;
	__u32 pad;
};

enum flow_frame_flag {
	FLOW_FRAME_SHOWN = 1,
	FLOW_FRAME_MATCHED = 2,
};

struct flow_frame {
	__u64 ts;
	/* What pairs a return with this entry: the stack pointer at the call (eval-frame), the
	 * frame address (3.11 USDT), else the name pointer. */
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

/* ---- pyprobe record, top (bpf/sample.bpf.c) ---- */

/*
 * Where a thread's Python stack is, per CPython version (src/versions/table.rs; 3.13+ from the
 * build's _Py_DebugOffsets): from _PyRuntime to the interpreters, their thread states, and each
 * thread state's chain of frames.
 */
struct stack_layout {
	/* Run-time address of _PyRuntime. */
	__u64 runtime_addr;
	__u32 interpreters_head;
	__u32 interp_next;
	__u32 interp_threads_head;
	__u32 tstate_next;
	/* pthread_self() of the thread: on x86-64 glibc, the thread's FS base. */
	__u32 tstate_thread_id;
	/* tstate -> the current frame; 3.11 and 3.12: -> the cframe, then cframe_frame. */
	__u32 tstate_frame;
	/* 3.11, 3.12: cframe -> current_frame; -1 where the thread state points at the frame. */
	__s32 cframe_frame;
	__u32 frame_code;
	__u32 frame_previous;
	/* <= 3.10: f_lasti (an int); 3.11+: the instruction pointer. */
	__u32 frame_instr;
	/* 3.11+: the frame's owner byte; 0 where frames have none (<= 3.10). */
	__u32 frame_owner;
	/* Owners from this value on are C-stack or interpreter shims (3.12+), skipped; 256: none. */
	__u32 owner_shim;
	/* Bytes of a frame read at once: every field above lies within them. */
	__u32 frame_size;
	__u32 pad;
	/* 3.14+: the frame's code reference is a tagged _PyStackRef; clear these bits. */
	__u64 code_tag_mask;
};

/* One frame of a sampled stack: its code object and where it was (f_lasti or instr pointer). */
struct stack_frame {
	__u64 code;
	__u64 instr;
};

/* A stack seen for the first time, sent to userspace to be named once (innermost first). */
struct stack_record {
	__u64 id;
	__u32 depth;
	__u8 truncated;
	__u8 pad;
	/* record --async: how many frames, innermost first, run in coroutines (or generators) up
	 * to and including the outermost one (a running task's own coroutine); 0: none. */
	__u16 coro_depth;
	struct stack_frame frames[MAX_STACK_DEPTH];
};

/* What a sample is counted under: a thread and its stack (a hash of its frames); with record
 * --async also the outermost coroutine running (a task's own: its address), else 0, and the
 * generation of that address (a coroutine freed and another made at its address is a new
 * generation once userspace has seen the first one's task finish). */
struct sample_key {
	__u64 stack_id;
	__u32 tid;
	__u32 coro_gen;
	__u64 coro;
};

/* ---- pyprobe agent (system-wide: every process of one interpreter file) ---- */

/* Durations counted per Prometheus bucket: buckets[i] holds those <= bounds[i] and above the
 * bound before (not cumulative); the last bucket holds what is above every bound. */
struct agent_hist {
	__u64 count;
	__u64 sum_ns;
	__u64 buckets[AGENT_BUCKETS];
};

struct agent_gc_key {
	__u32 tgid;
	__u32 generation;
};

struct agent_gc_stats {
	struct agent_hist pauses;
	__u64 collected;
};

/* ---- pyprobe exceptions ---- */

/* Where a raised exception is, per CPython version (src/commands/exceptions/tracer.rs). */
struct exc_layout {
	/* tstate -> curexc_type (<= 3.11, a type; curexc_traceback 16 bytes on) or
	 * current_exception (3.12+, the instance). */
	__u32 tstate_exc;
	/* 3.12+: the instance's traceback field; 0 where the traceback is in the thread state. */
	__u32 exc_traceback;
	/* 3.11+: PyFrameObject -> its _PyInterpreterFrame; 0 where the frame object is the frame. */
	__u32 frame_object_frame;
	/* PyTracebackObject -> tb_frame. */
	__u32 tb_frame;
};

/* What an exception is counted under: its type, where it was raised (the first Python frame it
 * passed), the function it stopped in, how many frames it passed and whether one was the
 * thread's outermost Python frame. */
struct exc_key {
	__u64 type;
	__u64 raise_code;
	__u64 raise_instr;
	__u64 end_code;
	__u32 frames;
	__u8 reached_top;
	__u8 pad[3];
};

/* The exception a thread is propagating, until the thread raises another one. */
struct exc_flight {
	__u64 exc;
	/* The frame object the last traceback entry was made for. */
	__u64 last_frame;
	__u64 start_ns;
	struct exc_key key;
};

/* One exception, streamed once it stopped propagating (the thread's next one began). */
struct exc_event {
	struct exc_key key;
	__u64 start_ns;
	__u32 tid;
	__u32 pad;
};

#endif
