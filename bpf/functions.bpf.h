/* Function identity (the running code object), first-sight naming and the in-kernel --filter. */
#ifndef PYPROBE_FUNCTIONS_BPF_H
#define PYPROBE_FUNCTIONS_BPF_H

#include "common.bpf.h"

const volatile struct frame_layout layout = {};
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

static __always_inline __u64 read_user_u64(__u64 addr, bool *ok)
{
	__u64 v = 0;

	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr))
		*ok = false;
	return v;
}

/*
 * The thread's current frame: at function__entry and function__return that is the frame the
 * probe is about (checked for 3.11), unique while it runs. Zero when the layout is unknown.
 */
static __always_inline __u64 current_frame(void)
{
	bool ok = true;
	__u64 p;

	if (!layout.runtime_addr)
		return 0;
	p = read_user_u64(layout.runtime_addr + layout.tstate_current, &ok);
	if (ok && p)
		p = read_user_u64(p + layout.cframe, &ok);
	if (ok && p)
		p = read_user_u64(p + layout.current_frame, &ok);
	if (!ok || !p) {
		__sync_fetch_and_add(&losses.code_read_errors, 1);
		return 0;
	}
	return p;
}

/* A frame's code object; zero (the read already counted) when the frame is unknown. */
static __always_inline __u64 frame_code(__u64 frame)
{
	bool ok = true;
	__u64 p;

	if (!frame)
		return 0;
	p = read_user_u64(frame + layout.f_code, &ok);
	if (!ok || !p) {
		__sync_fetch_and_add(&losses.code_read_errors, 1);
		return 0;
	}
	return p;
}

/*
 * The code object of the thread's current frame. Zero when the layout is unknown, which makes
 * the probe's name and file pointers the identity instead.
 */
static __always_inline __u64 current_code(void)
{
	return frame_code(current_frame());
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

	n = bpf_probe_read_user_str(s->path, PATH_SCRATCH, file);
	if (n > FILE_LEN) {
		/* Keep the tail; a path past the scratch size keeps the tail of its first part. */
		e->file_truncated = 1;
		bpf_probe_read_user_str(e->file, FILE_LEN, file + (n - FILE_LEN));
		flen = FILE_LEN - 1;
	} else {
		bpf_probe_read_user_str(e->file, FILE_LEN, file);
		flen = n > 0 ? n - 1 : 0;
	}

	if (has_code && layout.co_firstlineno)
		bpf_probe_read_user(&e->firstlineno, sizeof(e->firstlineno),
				    (void *)(key->code + layout.co_firstlineno));
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

/* The function of code object `code` (0: unknown), named on first sight; its key is left in *key. */
static __always_inline struct fn_entry *lookup_function_code(const char *file, const char *name, int lineno,
							     struct fn_key *key, __u64 code)
{
	bool has_code;
	struct fn_entry *e;

	key->code = code;
	key->name_ptr = (__u64)name;
	has_code = key->code != 0;
	if (!has_code) {
		key->code = (__u64)file;
		key->lineno = lineno;
	}
	e = bpf_map_lookup_elem(&functions, key);
	if (e)
		return e;
	return first_sight(key, has_code, file, name);
}

/* The function this probe hit is about, named on first sight; its key is left in *key. */
static __always_inline struct fn_entry *lookup_function_key(const char *file, const char *name, int lineno,
							    struct fn_key *key)
{
	return lookup_function_code(file, name, lineno, key, current_code());
}

static __always_inline struct fn_entry *lookup_function(const char *file, const char *name, int lineno)
{
	struct fn_key key = {};

	return lookup_function_key(file, name, lineno, &key);
}

#endif
