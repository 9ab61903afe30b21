/* Function identity (the running code object), first-sight naming and the in-kernel --filter. */
#ifndef PYPROBE_FUNCTIONS_BPF_H
#define PYPROBE_FUNCTIONS_BPF_H

#include "common.bpf.h"

const volatile struct function_source source = {};
const volatile struct name_filter filters[MAX_FILTERS] = {};
const volatile __u32 nr_filters = 0;

/* Ids number functions densely so that histograms and events carry 4 bytes, not a key. */
__u32 next_fn_id = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct fn_key);
	__type(value, struct fn_entry);
} functions SEC(".maps");

struct scratch {
	struct fn_entry entry;
	char path[PATH_SCRATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_space SEC(".maps");

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

static __always_inline bool name_matches(const struct fn_entry *e, const volatile struct name_filter *f)
{
	for (int j = 0; j < NAME_LEN; j++) {
		if (j >= f->name_len)
			return f->name_prefix || (e->name[j] == 0 && !e->name_truncated);
		if (e->name[j] != f->name[j])
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

static __always_inline bool passes_filters(const struct fn_entry *e, __u32 flen)
{
	if (!nr_filters)
		return true;
	for (int i = 0; i < MAX_FILTERS; i++) {
		if (i >= nr_filters)
			break;
		if (name_matches(e, &filters[i]) && file_matches(e, flen, &filters[i]))
			return true;
	}
	return false;
}

/* Name a code object seen for the first time, decide the filter once, and remember both. */
static __noinline struct fn_entry *first_sight(struct fn_key *key, bool has_code, const char *file,
					      const char *name)
{
	__u32 zero = 0, flen;
	struct scratch *s;
	struct fn_entry *e;
	long n;
	int err;

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

	if (has_code && source.layout.co_firstlineno)
		bpf_probe_read_user(&e->firstlineno, sizeof(e->firstlineno),
				    (void *)(key->code + source.layout.co_firstlineno));
	else
		e->firstlineno = key->lineno;

	e->matched = passes_filters(e, flen);
	e->id = __sync_fetch_and_add(&next_fn_id, 1);

	err = bpf_map_update_elem(&functions, key, e, BPF_NOEXIST);
	if (err && err != -17 /* EEXIST: another CPU named it first */) {
		__sync_fetch_and_add(&losses.functions_full, 1);
		return NULL;
	}
	return bpf_map_lookup_elem(&functions, key);
}

/*
 * The key of the function a probe hit is about, given its code object (0: unknown, and then
 * file, name and line are the identity). True when the key holds a code object.
 */
static __always_inline bool function_key_of(struct pt_regs *ctx, __u32 name_reg, __u64 code, struct fn_key *key)
{
	key->code = code;
	key->name_ptr = name_arg(ctx, name_reg);
	if (code)
		return true;
	key->code = usdt_arg(ctx, 0);
	key->lineno = usdt_arg(ctx, 2);
	return false;
}

/* The key of the function this probe hit is about: code object and name pointer. */
static __always_inline bool function_key(struct pt_regs *ctx, __u32 name_reg, struct fn_key *key)
{
	return function_key_of(ctx, name_reg, frame_code(current_frame(ctx)), key);
}

/* The function of a key from function_key(), named on first sight. */
static __always_inline struct fn_entry *lookup_key(struct pt_regs *ctx, struct fn_key *key, bool has_code)
{
	struct fn_entry *e = bpf_map_lookup_elem(&functions, key);

	if (e)
		return e;
	return first_sight(key, has_code, (const char *)usdt_arg(ctx, 0), (const char *)key->name_ptr);
}

#endif
