/* Function identity (the running code object), first-sight naming and the in-kernel --filter. */
#ifndef PYPROBE_FUNCTIONS_BPF_H
#define PYPROBE_FUNCTIONS_BPF_H

#include "common.bpf.h"
#include <bpf/bpf_core_read.h>

const volatile struct source_config source = {};
const volatile struct name_filter filters[MAX_FILTERS] = {};
const volatile __u32 nr_filters = 0;

/*
 * --subprocesses: the probes are inherited by the processes forked from the target, which run
 * the same code at the same addresses, so a function is keyed by its process too, and the
 * direct-mapped cache (keyed by address alone) is left unused.
 */
const volatile bool per_process = false;

/*
 * With per_process, the top of the traced process's stack (/proc/PID/stat's startstack): a fork
 * keeps it, an exec moves it. A child that ran another program keeps its inherited probes; where
 * that program is the same interpreter they fire, with addresses pyprobe never read: skipped.
 */
const volatile __u64 family_stack = 0;

/* Only the fields read, relocated against the running kernel's BTF (CO-RE). */
struct mm_struct {
	unsigned long start_stack;
} __attribute__((preserve_access_index));

struct task_struct {
	struct mm_struct *mm;
} __attribute__((preserve_access_index));

/* Ids number functions densely so that histograms and events carry 4 bytes, not a key. */
__u32 next_fn_id = 0;

/* Which --filter patterns matched a function (bit i: pattern i), so that userspace can say
 * which matched none. */
__u32 filter_hits = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct fn_key);
	__type(value, struct fn_entry);
} functions SEC(".maps");

/*
 * The direct-mapped cache in front of the function table: an array slot per hash of a
 * function's key (its code object, or its trampoline stub), so the common call costs an
 * inlined array access instead of a hash lookup. Slots are claimed once and never given up.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FN_SLOTS);
	__type(key, __u32);
	__type(value, struct fn_slot);
} fn_slots SEC(".maps");

/* A code object's qualified name, read on first sight only for a qualified --filter. */
struct qualname {
	char text[NAME_LEN];
	__u8 truncated;
	/* Not ASCII (kept as code units): no qualified pattern, ASCII by parsing, matches it. */
	__u8 other;
};

struct scratch {
	struct fn_entry entry;
	struct qualname qualname;
	char path[PATH_SCRATCH];
};

PER_CPU_SLOT(scratch_space, struct scratch);

/* Reads USDT argument i (libbpf resolves its location from the ELF note). */
static __always_inline long usdt_arg(struct pt_regs *ctx, __u64 i)
{
	long v = 0;

	bpf_usdt_arg(ctx, i, &v);
	return v;
}

/*
 * The probe's funcname argument. When the note says it is a plain register (Debian: %r12) and
 * every site agrees, userspace names the register and this is one load from ctx, instead of
 * libbpf's generic spec lookup and kernel read.
 */
static __always_inline __u64 name_arg(struct pt_regs *ctx, __u32 reg)
{
	switch (reg) {
	case ARG_REG_RAX: return ctx->rax;
	case ARG_REG_RBX: return ctx->rbx;
	case ARG_REG_RCX: return ctx->rcx;
	case ARG_REG_RDX: return ctx->rdx;
	case ARG_REG_RSI: return ctx->rsi;
	case ARG_REG_RDI: return ctx->rdi;
	case ARG_REG_RBP: return ctx->rbp;
	case ARG_REG_R8: return ctx->r8;
	case ARG_REG_R9: return ctx->r9;
	case ARG_REG_R10: return ctx->r10;
	case ARG_REG_R11: return ctx->r11;
	case ARG_REG_R12: return ctx->r12;
	case ARG_REG_R13: return ctx->r13;
	case ARG_REG_R14: return ctx->r14;
	case ARG_REG_R15: return ctx->r15;
	default: return usdt_arg(ctx, 1);
	}
}

/*
 * The thread's current frame: at function__entry and function__return that is the frame the
 * probe is about (checked for 3.11), unique while it runs. Three reads from _PyRuntime down.
 */
static __always_inline __u64 frame_from_runtime(void)
{
	bool ok = true;
	__u64 p;

	p = read_user_u64(source.layout.runtime_addr + source.layout.tstate_current, &ok);
	if (ok && p)
		p = read_user_u64(p + source.layout.cframe, &ok);
	if (ok && p)
		p = read_user_u64(p + source.layout.current_frame, &ok);
	return ok ? p : 0;
}

/*
 * Debian's 3.11 probe sites sit in dtrace_function_entry/return(frame), which keep `frame` in
 * rbx: no reads at all. That is a fact of one build, so it is trusted only after
 * FRAME_REG_TRUST hits where rbx equals the frame found from _PyRuntime, and dropped for good
 * on the first disagreement.
 */
#define FRAME_REG_TRUST 64
__s64 frame_reg_agreements = 0;

/* The frame the probe is about; zero when the layout is unknown or the reads failed. */
static __always_inline __u64 current_frame(struct pt_regs *ctx)
{
	__u64 frame;

	if (!source.layout.runtime_addr)
		return 0;
	if (source.layout.frame_in_rbx && frame_reg_agreements >= FRAME_REG_TRUST && ctx->rbx)
		return ctx->rbx;
	frame = frame_from_runtime();
	if (!frame) {
		__sync_fetch_and_add(&losses.code_read_errors, 1);
		return 0;
	}
	if (source.layout.frame_in_rbx && frame_reg_agreements >= 0) {
		if (ctx->rbx == frame)
			__sync_fetch_and_add(&frame_reg_agreements, 1);
		else
			frame_reg_agreements = -(1LL << 40);
	}
	return frame;
}

/* A frame's code object; zero (the failure counted) when the frame is unknown or unreadable. */
static __always_inline __u64 frame_code(__u64 frame)
{
	bool ok = true;
	__u64 code;

	if (!frame)
		return 0;
	code = read_user_u64(frame + source.layout.f_code, &ok);
	if (!ok || !code) {
		__sync_fetch_and_add(&losses.code_read_errors, 1);
		return 0;
	}
	return code;
}

/* A name (NAME_LEN bytes, NUL-terminated) against a filter's NAME or PREFIX*. */
static __always_inline bool name_matches(const char *name, bool truncated, const volatile struct name_filter *f)
{
	for (int j = 0; j < NAME_LEN; j++) {
		if (j >= f->name_len)
			return f->name_prefix || (name[j] == 0 && !truncated);
		if (name[j] != f->name[j])
			return false;
	}
	return false;
}

/* FILE matches the end of the path on a component boundary: app.py matches /x/app.py, not myapp.py. */
static __always_inline bool file_matches(const struct fn_entry *e, __u32 flen, const volatile struct name_filter *f)
{
	__u32 fl = f->file_len, start;

	if (!fl)
		return true;
	if (fl > flen)
		return false;
	start = flen - fl;
	for (int j = 0; j < FILE_LEN; j++) {
		if (j >= fl)
			break;
		if (e->file[(start + j) & (FILE_LEN - 1)] != f->file[j])
			return false;
	}
	if (start == 0)
		return !e->file_truncated;
	return e->file[(start - 1) & (FILE_LEN - 1)] == '/';
}

/* Whether a function matches any --filter (each pattern that does is remembered). */
static __always_inline bool passes_filters(const struct fn_entry *e, __u32 flen, const struct qualname *q)
{
	__u32 hits = 0;
	bool named;

	if (!nr_filters)
		return true;
	for (int i = 0; i < MAX_FILTERS; i++) {
		const volatile struct name_filter *f = &filters[i];

		if (i >= nr_filters)
			break;
		if (f->qualified)
			named = !q->other && name_matches(q->text, q->truncated, f);
		else
			named = name_matches(e->name, e->name_truncated, f);
		if (named && file_matches(e, flen, f))
			hits |= 1U << i;
	}
	if (hits & ~READ_ONCE(filter_hits))
		__sync_fetch_and_or(&filter_hits, hits);
	return hits != 0;
}

/* Whether any --filter is qualified (the loop folds away: the filters are read-only data). */
static __always_inline bool wants_qualname(void)
{
	for (int i = 0; i < MAX_FILTERS; i++)
		if (i < nr_filters && filters[i].qualified)
			return true;
	return false;
}

/* PyASCIIObject.state: compact and ascii bits, and the kind (bytes per code unit). */
#define STR_COMPACT 0x20
#define STR_ASCII 0x40
#define STR_KIND(state) (((state) >> 2) & 7)

/*
 * Copies the text of a Python str into out (`size` bytes, a power of two): its first bytes,
 * or with `tail` its last (the end of a path is what tells files apart). ASCII is kept as
 * UTF-8; any other compact str as its code units, which userspace decodes. Returns the bytes
 * copied, and the str's own length in bytes in *nbytes_out.
 */
static __always_inline __u32 read_py_str(__u64 obj, char *out, __u32 size, bool tail, __u8 *encoding,
					 __u8 *truncated, __u64 *nbytes_out, __u32 ascii_data, __u32 compact_data)
{
	__u32 state = 0, unit, copy;
	__u64 len, data, nbytes, from;
	bool ok = true;

	*nbytes_out = 0;
	len = read_user_u64(obj + 16, &ok);
	if (bpf_probe_read_user(&state, sizeof(state), (void *)(obj + 32)) || !ok || !(state & STR_COMPACT))
		return 0;
	unit = state & STR_ASCII ? 1 : STR_KIND(state);
	if (unit != 1 && unit != 2 && unit != 4)
		return 0;
	data = obj + (state & STR_ASCII ? ascii_data : compact_data);
	nbytes = len * unit;
	*nbytes_out = nbytes;
	copy = nbytes < size - 1 ? nbytes : (size - 1) / unit * unit;
	from = tail ? nbytes - copy : 0;
	*truncated = nbytes > copy;
	*encoding = state & STR_ASCII ? TEXT_UTF8 : unit;
	if (copy && bpf_probe_read_user(out, copy & (size - 1), (void *)(data + from)))
		return 0;
	return copy;
}

/*
 * A code object's qualified name into q, when a qualified --filter needs it and the source can
 * read it (code: the code object, 0 where the source has none; userspace refuses qualified
 * patterns there).
 */
static __always_inline void read_qualname(__u64 code, struct qualname *q)
{
	__u8 encoding = TEXT_UTF8;
	bool ok = true;
	__u64 obj, nbytes;

	/* At most NAME_LEN - 1 bytes are copied: the text stays NUL-terminated. */
	__builtin_memset(q, 0, sizeof(*q));
	if (wants_qualname() && code && source.qualname.co_qualname) {
		obj = read_user_u64(code + source.qualname.co_qualname, &ok);
		if (ok && obj)
			read_py_str(obj, q->text, NAME_LEN, false, &encoding, &q->truncated, &nbytes,
				    source.qualname.str_ascii_data, source.qualname.str_compact_data);
	}
	q->other = encoding != TEXT_UTF8;
}

/* Name a code object seen for the first time, decide the filter once, and remember both. */
/*
 * A function named for the first time: matched against the filters, given its id, and put in
 * the table (or the entry another CPU put there first); NULL, counted, when the table is full.
 */
static __always_inline struct fn_entry *publish_function(struct fn_key *key, struct fn_entry *e,
							  __u32 flen, const struct qualname *q)
{
	long err;

	e->matched = passes_filters(e, flen, q);
	e->id = __sync_fetch_and_add(&next_fn_id, 1);
	err = bpf_map_update_elem(&functions, key, e, BPF_NOEXIST);
	if (err && err != -17 /* EEXIST: another CPU named it first */) {
		__sync_fetch_and_add(&losses.functions_full, 1);
		return NULL;
	}
	return bpf_map_lookup_elem(&functions, key);
}

static __noinline struct fn_entry *first_sight(struct fn_key *key, bool has_code, const char *file,
					      const char *name)
{
	__u32 zero = 0, flen;
	struct scratch *s;
	struct fn_entry *e;
	long n;

	s = bpf_map_lookup_elem(&scratch_space, &zero);
	if (!s)
		return NULL;
	e = &s->entry;
	__builtin_memset(e, 0, sizeof(*e));

	n = bpf_probe_read_user_str(s->path, PATH_SCRATCH, name);
	e->name_truncated = n > NAME_LEN;
	bpf_probe_read_user_str(e->name, NAME_LEN, name);

	flen = read_path_tail(s->path, e->file, file, &e->file_truncated);
	if (flen > FILE_LEN - 1)
		flen = FILE_LEN - 1;

	e->firstlineno = key->lineno;

	read_qualname(has_code ? key->code : 0, &s->qualname);
	return publish_function(key, e, flen, &s->qualname);
}

/*
 * The key of the function a probe hit is about, given its code object (0: unknown, and then
 * file, name and line are the identity). True when the key holds a code object.
 */
static __always_inline bool function_key_of(struct pt_regs *ctx, __u32 name_reg, __u64 code, struct fn_key *key)
{
	key->code = code;
	key->name_ptr = name_arg(ctx, name_reg);
	if (code) {
		if (bpf_probe_read_user(&key->lineno, sizeof(key->lineno),
					(void *)(code + source.layout.co_firstlineno)))
			__sync_fetch_and_add(&losses.code_read_errors, 1);
		return true;
	}
	key->code = usdt_arg(ctx, 0);
	key->lineno = usdt_arg(ctx, 2);
	return false;
}

/* The key of the function this probe hit is about: code object and name pointer. */
static __always_inline bool function_key(struct pt_regs *ctx, __u32 name_reg, struct fn_key *key)
{
	return function_key_of(ctx, name_reg, frame_code(current_frame(ctx)), key);
}

/* Whether the current process still runs the program the traced one runs (it has not exec'd). */
static __always_inline bool same_program(void)
{
	struct task_struct *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, mm, start_stack) == family_stack;
}

/* The process part of a function's key. */
static __always_inline __u32 key_pid(void)
{
	return per_process ? current_pid() : 0;
}

static __always_inline struct fn_slot *slot_of(__u64 code)
{
	if (per_process)
		return NULL;
	/* Fibonacci hashing of the code object's address (16-byte aligned). */
	__u32 idx = ((code >> 4) * 0x9E3779B97F4A7C15ULL) >> 52;

	return bpf_map_lookup_elem(&fn_slots, &idx);
}

/* Hands an empty slot to a function just looked up in the table, so later calls take the fast way. */
static __always_inline void claim_slot(struct fn_slot *slot, const struct fn_key *key, const struct fn_entry *e)
{
	if (!slot || slot->code || !key->code)
		return;
	if (__sync_val_compare_and_swap(&slot->code, 0, key->code) != 0)
		return;
	slot->lineno = key->lineno;
	slot->id = e->id;
	slot->matched = e->matched;
	slot->generator = e->generator;
	/* Last: a reader trusts the slot only once name_ptr matches. The barrier keeps the compiler
	 * from reordering the stores; x86 keeps them in order for other CPUs. */
	barrier();
	WRITE_ONCE(slot->name_ptr, key->name_ptr);
}

/* A slot keyed by a trampoline stub has this for a name (a stub has none of its own). */
#define STUB_SLOT 1

/* ---- the eval-frame source (struct eval_layout in pyprobe.h) ---- */

/* CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR: a call of such code makes an object. */
#define CO_MAKES_GENERATOR (0x20 | 0x80 | 0x200)

/* The frame _PyEval_EvalFrameDefault was given. */
static __always_inline __u64 eval_frame_arg(struct pt_regs *ctx)
{
	/* Both loads are made (the verifier refuses a context offset chosen at run time). */
	__u64 rdi = READ_ONCE(ctx->rdi), rsi = READ_ONCE(ctx->rsi);

	return source.eval.frame_in_rdi ? rdi : rsi;
}

/*
 * The key of a frame _PyEval_EvalFrameDefault was given: its code object, def line and name.
 * False when the frame could not be read (counted).
 */
static __always_inline bool eval_frame_key(__u64 frame, struct fn_key *key)
{
	/* Read as whole words, picked by index: the verifier tracks those exactly. */
	__u64 w[16] = {};
	__u32 span, base, at;
	bool ok = true;

	key->code = read_user_u64(frame + source.eval.f_code, &ok) & ~source.eval.code_tag_mask;
	/* One read for the def line and the name, which follows it in the code object (from an
	 * 8-byte boundary). */
	base = source.eval.co_firstlineno & ~7;
	span = source.eval.co_name + 8 - base;
	if (span > sizeof(w))
		span = sizeof(w);
	if (ok && key->code && bpf_probe_read_user(w, span, (void *)(key->code + base)))
		ok = false;
	at = source.eval.co_firstlineno - base;
	key->lineno = w[0] >> ((at & 4) * 8);
	key->name_ptr = w[((source.eval.co_name - base) >> 3) & 15];
	if (!ok || !key->code || !key->name_ptr) {
		__sync_fetch_and_add(&losses.code_read_errors, 1);
		return false;
	}
	return true;
}

/*
 * Whether an eval-frame entry of generator code only creates the generator (3.11+): its frame
 * is then still the thread's (owner 0), where a resume's belongs to the generator. Read only
 * for code that makes generators; <= 3.10 never evaluates a frame to create one.
 */
static __always_inline bool creates_generator(__u64 frame)
{
	__u8 owner = 1;

	if (!frame || !source.eval.owner)
		return false;
	bpf_probe_read_user(&owner, sizeof(owner), (void *)(frame + source.eval.owner));
	return owner == 0;
}

/* Name a code object seen by the eval-frame source for the first time, from its own fields,
 * decide the filter once, and remember both. */
static __noinline struct fn_entry *first_sight_code(struct fn_key *key)
{
	__u32 zero = 0, flags = 0, flen;
	struct scratch *s;
	struct fn_entry *e;
	bool ok = true;
	__u64 file, nbytes = 0;

	s = bpf_map_lookup_elem(&scratch_space, &zero);
	if (!s)
		return NULL;
	e = &s->entry;
	__builtin_memset(e, 0, sizeof(*e));
	e->name_bytes = read_py_str(key->name_ptr, e->name, NAME_LEN, false, &e->name_encoding,
				    &e->name_truncated, &nbytes, source.eval.str_ascii_data,
				    source.eval.str_compact_data);
	file = read_user_u64(key->code + source.eval.co_filename, &ok);
	nbytes = 0;
	flen = ok ? read_py_str(file, e->file, FILE_LEN, true, &e->file_encoding, &e->file_truncated,
				&nbytes, source.eval.str_ascii_data, source.eval.str_compact_data) : 0;
	/* Counted as read_path_tail counts what the USDT sources read. */
	if (nbytes > PATH_SCRATCH - 1)
		__sync_fetch_and_add(&losses.paths_truncated, 1);
	e->file_bytes = flen;
	e->firstlineno = key->lineno;
	bpf_probe_read_user(&flags, sizeof(flags), (void *)(key->code + source.eval.co_flags));
	e->generator = (flags & CO_MAKES_GENERATOR) != 0;
	read_qualname(key->code, &s->qualname);
	return publish_function(key, e, flen, &s->qualname);
}

/*
 * The perf trampoline's stub that called this _PyEval_EvalFrameDefault (see struct
 * eval_layout), or 0 when the call did not come through one. Reading the return address costs
 * a user-memory read, about half the program's time; but the interpreter calls the stub
 * through a register (r14 in pyenv's 3.12.1, r8 in Debian's 3.14), which the stub leaves alone.
 * Which one is a fact of the build, so it is learnt: each call checks every candidate register
 * against the return address read from the stack, and after STUB_TRUST calls where one always
 * pointed just before it, and no other did, that register is trusted and the read skipped. A
 * build whose registers never agree keeps reading.
 */
#define STUB_CANDIDATES 10
#define STUB_TRUST 64
/* The stub's call returns within this many bytes of its start. */
#define STUB_SPAN 64
__u32 stub_candidates = (1 << STUB_CANDIDATES) - 1;
__u32 stub_checks = 0;
/* Index of the trusted candidate; -1 while learning, -2 when none agreed. */
__s32 stub_reg = -1;

/* The candidate registers, loaded one by one: the verifier refuses a context offset chosen at
 * run time, so an index picks from this copy instead. */
struct stub_regs {
	__u64 r[16]; /* a power of two, so that a masked index is in bounds */
};

static __always_inline void load_stub_regs(struct pt_regs *ctx, struct stub_regs *c)
{
	c->r[0] = READ_ONCE(ctx->rax);
	c->r[1] = READ_ONCE(ctx->rbx);
	c->r[2] = READ_ONCE(ctx->r8);
	c->r[3] = READ_ONCE(ctx->r9);
	c->r[4] = READ_ONCE(ctx->r10);
	c->r[5] = READ_ONCE(ctx->r11);
	c->r[6] = READ_ONCE(ctx->r12);
	c->r[7] = READ_ONCE(ctx->r13);
	c->r[8] = READ_ONCE(ctx->r14);
	c->r[9] = READ_ONCE(ctx->r15);
}

static __always_inline bool in_interpreter(__u64 addr)
{
	return addr >= source.eval.interp_lo && addr < source.eval.interp_hi;
}

/* Narrows the candidates with one call's return address, and trusts one after enough calls.
 * Branch-free, so that the verifier walks one path, not one per combination of candidates. */
static __noinline void learn_stub_register(struct stub_regs *c, __u64 ret)
{
	__u32 wrong = 0, left;

	for (int i = 0; i < STUB_CANDIDATES; i++) {
		__u64 d = ret - c->r[i];

		/* Wrong unless 0 <= d < STUB_SPAN: d, or STUB_SPAN - 1 - d, has its top bit set. */
		wrong |= (__u32)(((d | (STUB_SPAN - 1 - d)) >> 63) & 1) << i;
	}
	left = __sync_fetch_and_and(&stub_candidates, ~wrong) & ~wrong;
	if (!left) {
		stub_reg = -2;
		return;
	}
	/* Trusted once a single register has agreed with every call checked, STUB_TRUST of them. */
	if (__sync_fetch_and_add(&stub_checks, 1) + 1 < STUB_TRUST || (left & (left - 1)))
		return;
	stub_reg = !!(left & 0xaaaa) | !!(left & 0xcccc) << 1 | !!(left & 0xf0f0) << 2 | !!(left & 0xff00) << 3;
}

/* The stub's address: its start (from the trusted register) or, where no register agreed, the
 * return address into it; 0 while the register is being learnt. */
static __always_inline __u64 trampoline_stub(struct pt_regs *ctx, __u64 call_sp)
{
	__s32 reg = READ_ONCE(stub_reg);
	struct stub_regs c = {};
	bool ok = true;
	__u64 ret;

	if (!source.eval.trampoline)
		return 0;
	load_stub_regs(ctx, &c);
	if (reg >= 0) {
		ret = c.r[(__u32)reg & 15];
		return ret && !in_interpreter(ret) ? ret : 0;
	}
	ret = read_user_u64(call_sp, &ok);
	if (!ok || in_interpreter(ret))
		return 0;
	if (reg == -2)
		return ret;
	/* While learning, no stub keys a slot: once trusted, the register's value will. */
	learn_stub_register(&c, ret);
	return 0;
}

/* The stack pointer at the call of the probed _PyEval_EvalFrameDefault, at its entry probe. */
static __always_inline __u64 eval_call_sp(struct pt_regs *ctx)
{
	return ctx->rsp + source.eval.sp_adjust;
}

/* Whether x86 condition `cc` (the low nibble of a jcc's opcode) holds for `flags`. */
static __always_inline bool condition_holds(__u32 cc, __u64 flags)
{
	bool cf = flags & (1 << 0), pf = flags & (1 << 2), zf = flags & (1 << 6);
	bool sf = flags & (1 << 7), of = flags & (1 << 11);
	bool holds;

	switch (cc >> 1) {
	case 0: holds = of; break;
	case 1: holds = cf; break;
	case 2: holds = zf; break;
	case 3: holds = cf || zf; break;
	case 4: holds = sf; break;
	case 5: holds = pf; break;
	case 6: holds = sf != of; break;
	default: holds = zf || sf != of; break;
	}
	return (cc & 1) ? !holds : holds;
}

/*
 * The same stack pointer at the call's return, on one of the sites src/source/exits.rs finds
 * where _PyEval_EvalFrameDefault returns (no uretprobe: exits.rs says why). The site's cookie
 * says what to add to rsp or rbp, and for a conditional branch the condition under which it
 * returns; 0 where this pass does not return.
 */
static __always_inline __u64 eval_return_sp(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 cc = (cookie >> 40) & 0x1f;
	__u64 rsp = ctx->rsp, rbp = ctx->rbp, base;

	/* Both read as they are: the verifier refuses a context read at a computed offset. */
	barrier_var(rsp);
	barrier_var(rbp);
	base = (cookie >> 32) & 1 ? rbp : rsp;

	if (cc && !condition_holds(cc - 1, ctx->eflags))
		return 0;
	return base + (__s64)(__s32)(__u32)cookie;
}

/* The function of a key from function_key(), named on first sight. */
static __always_inline struct fn_entry *lookup_key(struct pt_regs *ctx, struct fn_key *key, bool has_code)
{
	struct fn_entry *e;

	if (per_process && !same_program())
		return NULL;
	key->pid = key_pid();
	e = bpf_map_lookup_elem(&functions, key);

	if (e)
		return e;
	if (source.eval_frame)
		return first_sight_code(key);
	return first_sight(key, has_code, (const char *)usdt_arg(ctx, 0), (const char *)key->name_ptr);
}

#endif
