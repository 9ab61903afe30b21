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

PER_CPU_SLOT(line_scratch_space, struct line_scratch);

/* Name a file pointer seen for the first time and decide --file for it, once. */
static __noinline struct line_file *first_sight_file(__u64 file_ptr)
{
	struct line_scratch *s;
	__u32 zero = 0, len;
	int err;

	s = bpf_map_lookup_elem(&line_scratch_space, &zero);
	if (!s)
		return NULL;
	__builtin_memset(&s->file, 0, sizeof(s->file));
	len = read_path_tail(s->path, s->file.file, (const char *)file_ptr, &s->file.file_truncated);
	s->file.matched = glob_any(s->path, len);
	err = bpf_map_update_elem(&line_files, &file_ptr, &s->file, BPF_NOEXIST);
	if (err && err != -17 /* EEXIST: another CPU named it first */) {
		__sync_fetch_and_add(&losses.files_full, 1);
		return NULL;
	}
	return bpf_map_lookup_elem(&line_files, &file_ptr);
}

SEC("usdt")
int BPF_USDT(on_line, const char *file, const char *func, int lineno)
{
	struct line_key key = { .file_ptr = (__u64)file, .lineno = lineno };
	struct line_file *f;

	if (!armed())
		return 0;
	f = bpf_map_lookup_elem(&line_files, &key.file_ptr);
	if (!f)
		f = first_sight_file(key.file_ptr);
	if (!f || !f->matched)
		return 0;
	map_increment(&line_counts, &key, &losses.lines_full);
	return 0;
}
