/* What every pyprobe BPF program shares: includes, the arm switch, loss counters, bucketing,
 * and the idioms of per-thread state, counter maps and user-memory reads (what only some share
 * has a header of its own: gc_pause.bpf.h, import_pairing.bpf.h, functions.bpf.h, ...). */
#ifndef PYPROBE_COMMON_BPF_H
#define PYPROBE_COMMON_BPF_H

#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>
#include "pyprobe.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * No program checks the process id: every probe is attached for one process, and the kernel
 * runs a uprobe's programs only in the process it was attached for (a child forked from the
 * target inherits the breakpoint, and the kernel filters the child's hits out and removes it).
 * With --subprocesses the probes are inherited on purpose (src/kernel/inherit.rs): the function
 * tools key by process then (functions.bpf.h, per_process).
 */

/* One access the compiler may neither split, merge nor move across another such access. */
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

/* Every record that could not be kept is counted here and reported by userspace. */
struct loss_counters losses = {};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct control);
} control SEC(".maps");

/*
 * Whether the session is recording. Probes go live one by one; a session records only between
 * the one store that arms them all and the one that disarms them, so that the start and the end
 * of a session cut every thread at one moment (an array lookup: the verifier inlines it).
 */
static __always_inline bool armed(void)
{
	__u32 zero = 0;
	struct control *c = bpf_map_lookup_elem(&control, &zero);

	return c && READ_ONCE(c->armed);
}

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

static __always_inline __u32 current_pid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

/* A u64 of the target's memory; *ok turns false (and stays so) when a read fails. */
static __always_inline __u64 read_user_u64(__u64 addr, bool *ok)
{
	__u64 v = 0;

	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr))
		*ok = false;
	return v;
}

/* A map of one value per CPU: room for what is too big for the BPF stack (a scratch record), or
 * the zeroed template thread_entry copies. */
#define PER_CPU_SLOT(name, value_type)                   \
	struct {                                         \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); \
		__uint(max_entries, 1);                  \
		__type(key, __u32);                      \
		__type(value, value_type);               \
	} name SEC(".maps")

/* A map of what each thread has open (a pause, an exception, its stack of calls), keyed by the
 * kernel's thread id: threads of one process must not pair each other's starts and ends. */
#define BY_THREAD(name, map_type, flags, entries, value_type) \
	struct {                                               \
		__uint(type, map_type);                        \
		__uint(map_flags, flags);                      \
		__uint(max_entries, entries);                  \
		__type(key, __u32);                            \
		__type(value, value_type);                     \
	} name SEC(".maps")

/*
 * Raises a per-thread stack's depth for a new entry and says where the entry goes (*at): false
 * past `max` entries (a power of two), counted as too deep. The depth still counts such an
 * entry, so that the returns above the limit pop nothing below it.
 */
static __always_inline bool stack_push(__u32 *depth, __u32 max, __u32 *at)
{
	__u32 d = *depth;

	*depth = d + 1;
	if (d >= max) {
		__sync_fetch_and_add(&losses.too_deep, 1);
		return false;
	}
	*at = d & (max - 1); /* d < max already: the mask shows the verifier the bound */
	return true;
}

/*
 * A thread's entry in a per-thread map. With `create`, a zeroed one is added (copied from a
 * per-CPU template: these entries are too big for the BPF stack); a full map is counted.
 */
static __always_inline void *thread_entry(void *map, void *zeroed, __u32 tid, bool create)
{
	__u32 zero = 0;
	void *v = bpf_map_lookup_elem(map, &tid);
	void *z;

	if (v || !create)
		return v;
	z = bpf_map_lookup_elem(zeroed, &zero);
	if (!z)
		return NULL;
	bpf_map_update_elem(map, &tid, z, BPF_NOEXIST);
	v = bpf_map_lookup_elem(map, &tid);
	if (!v)
		__sync_fetch_and_add(&losses.threads_full, 1);
	return v;
}

/* Adds one to a counter map's value for `key`, inserting it first; a full map counts in *full. */
static __always_inline void map_increment(void *map, const void *key, __u64 *full)
{
	__u64 one = 1, *c = bpf_map_lookup_elem(map, key);

	if (c) {
		__sync_fetch_and_add(c, 1);
		return;
	}
	if (!bpf_map_update_elem(map, key, &one, BPF_NOEXIST))
		return;
	/* EEXIST: another CPU inserted it first. */
	c = bpf_map_lookup_elem(map, key);
	if (c)
		__sync_fetch_and_add(c, 1);
	else
		__sync_fetch_and_add(full, 1);
}

/*
 * Reads a NUL-terminated path and keeps its end, the part that tells files apart (the file
 * name is what users filter on): its last PATH_SCRATCH-1 bytes in `scratch`, against which
 * globs are matched, and its last FILE_LEN-1 bytes in `out`, which is shown and which FILE:
 * patterns match. Sets *truncated when `out` lost the beginning, and counts a path longer than
 * `scratch` holds (paths_truncated): a glob saw only its end. Returns the length kept in scratch.
 */
static __always_inline __u32 read_path_tail(char *scratch, char *out, const char *path, __u8 *truncated)
{
	__u64 len = 0;
	long n;

	/* Its length first: the first read holds every path of PATH_SCRATCH-1 bytes or fewer. A
	 * path whose end is not found within PATH_CHUNKS reads keeps the last bytes read. */
	for (int i = 0; i < PATH_CHUNKS; i++) {
		n = bpf_probe_read_user_str(scratch, PATH_SCRATCH, path + len);
		if (n <= 0)
			break;
		if (n < PATH_SCRATCH) {
			len += n - 1;
			break;
		}
		len += PATH_SCRATCH - 1;
	}
	*truncated = len > FILE_LEN - 1;
	bpf_probe_read_user_str(out, FILE_LEN, path + (*truncated ? len - (FILE_LEN - 1) : 0));
	if (len <= PATH_SCRATCH - 1)
		return len;
	__sync_fetch_and_add(&losses.paths_truncated, 1);
	bpf_probe_read_user_str(scratch, PATH_SCRATCH, path + len - (PATH_SCRATCH - 1));
	return PATH_SCRATCH - 1;
}

/* floor(log2(v)) for v > 0, branch-light so the verifier sees a short straight path. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

/* Log-linear bucket: exact below 16, then 16 buckets per power of two (<= 6.25% wide). */
static __always_inline __u32 hist_bucket(__u64 v)
{
	__u32 e, sub;

	if (v < (1 << HIST_SUB_BITS))
		return v;
	e = log2_u64(v);
	sub = (v >> (e - HIST_SUB_BITS)) & ((1 << HIST_SUB_BITS) - 1);
	return (((e - HIST_SUB_BITS + 1) << HIST_SUB_BITS) + sub) & (HIST_BUCKETS - 1);
}

#endif
