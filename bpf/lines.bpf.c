// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pyprobe lines' kernel side: executions per file:line from the line probe, counted in a map. */
#include "glob.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct line_key);
	__type(value, __u64);
} line_counts SEC(".maps");

/* File name pointers: CPython passes co_filename's cached UTF-8, stable while the code lives. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct line_file);
} line_files SEC(".maps");

struct line_scratch {
	char path[PATH_SCRATCH];
	struct line_file file;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct line_scratch);
} line_scratch_space SEC(".maps");

struct line_losses line_losses = {};

/* Name a file pointer seen for the first time and decide --file for it, once. */
static __noinline struct line_file *first_sight_file(__u64 file_ptr)
{
	struct line_scratch *s;
	__u32 zero = 0, len;
	long n;
	int err;

	s = bpf_map_lookup_elem(&line_scratch_space, &zero);
	if (!s)
		return NULL;
	__builtin_memset(&s->file, 0, sizeof(s->file));
	n = bpf_probe_read_user_str(s->path, PATH_SCRATCH, (const char *)file_ptr);
	len = n > 0 ? n - 1 : 0;
	if (n > FILE_LEN) {
		/* Keep the tail: the end of a path is what tells files apart. */
		s->file.file_truncated = 1;
		bpf_probe_read_user_str(s->file.file, FILE_LEN, (const char *)file_ptr + (n - FILE_LEN));
	} else {
		bpf_probe_read_user_str(s->file.file, FILE_LEN, (const char *)file_ptr);
	}
	s->file.matched = glob_any(s->path, len);
	err = bpf_map_update_elem(&line_files, &file_ptr, &s->file, BPF_NOEXIST);
	if (err && err != -17 /* EEXIST: another CPU named it first */) {
		__sync_fetch_and_add(&line_losses.files_full, 1);
		return NULL;
	}
	return bpf_map_lookup_elem(&line_files, &file_ptr);
}

SEC("usdt")
int BPF_USDT(on_line, const char *file, const char *func, int lineno)
{
	struct line_key key = { .file_ptr = (__u64)file, .lineno = lineno };
	struct line_file *f;
	__u64 one = 1, *c;

	if (!from_target())
		return 0;
	f = bpf_map_lookup_elem(&line_files, &key.file_ptr);
	if (!f)
		f = first_sight_file(key.file_ptr);
	if (!f || !f->matched)
		return 0;
	c = bpf_map_lookup_elem(&line_counts, &key);
	if (c) {
		__sync_fetch_and_add(c, 1);
		return 0;
	}
	if (!bpf_map_update_elem(&line_counts, &key, &one, BPF_NOEXIST))
		return 0;
	c = bpf_map_lookup_elem(&line_counts, &key);
	if (c)
		__sync_fetch_and_add(c, 1);
	else
		__sync_fetch_and_add(&line_losses.lines_full, 1);
	return 0;
}
