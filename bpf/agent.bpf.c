// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pyprobe agent's kernel side: GC pauses and module loads of every process of one interpreter
 * file (attached with no process filter), kept per process in Prometheus buckets. */
#include "common.bpf.h"
#include "gc_pause.bpf.h"
#include "import_pairing.bpf.h"

/*
 * Unlike the one-process tools (see common.bpf.h), these programs run in every process that
 * maps the file, including ones started after attach: everything here is keyed by process.
 */

/* The buckets' upper bounds in ns (src/commands/agent/buckets.rs), ascending; the last
 * bucket has none. */
const volatile __u64 bounds_ns[AGENT_BUCKETS - 1] = {};

/*
 * The hash maps allocate their entries as processes and threads use them, not at load: an
 * agent keeps one set per interpreter file for its whole life, mostly empty.
 */

/* Processes whose statistics did not fit (gc_stats or import_stats full): counted, not kept. */
__u64 stats_full = 0;

BY_THREAD(gc_starts, BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC, 10240, struct gc_start);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 3 * 4096);
	__type(key, struct agent_gc_key);
	__type(value, struct agent_gc_stats);
} gc_stats SEC(".maps");

IMPORT_PAIRING(4096, BPF_F_NO_PREALLOC)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct agent_hist);
} import_stats SEC(".maps");

/* The process's entry in a per-process statistics map, created zeroed on first use. */
static __always_inline void *stats_of(void *map, const void *key)
{
	struct agent_gc_stats zero = {};
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	/* Both value types fit in `zero`; a racing CPU's insert wins (EEXIST) and is used. */
	bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
	v = bpf_map_lookup_elem(map, key);
	if (!v)
		__sync_fetch_and_add(&stats_full, 1);
	return v;
}

static __always_inline void hist_record(struct agent_hist *h, __u64 d)
{
	__u32 b = AGENT_BUCKETS - 1;

	for (__u32 i = 0; i < AGENT_BUCKETS - 1; i++) {
		if (d <= bounds_ns[i]) {
			b = i;
			break;
		}
	}
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum_ns, d);
	if (b >= AGENT_BUCKETS)
		b = AGENT_BUCKETS - 1;
	__sync_fetch_and_add(&h->buckets[b], 1);
}

SEC("usdt")
int BPF_USDT(gc_start, int generation)
{
	if (armed())
		gc_pause_start(&gc_starts, generation);
	return 0;
}

SEC("usdt")
int BPF_USDT(gc_done, long collected)
{
	struct agent_gc_key key = { .tgid = current_pid() };
	struct agent_gc_stats *st;
	__s32 generation;
	__u64 d;

	if (!armed())
		return 0;
	if (!gc_pause_end(&gc_starts, bpf_ktime_get_ns(), &d, &generation))
		return 0;
	key.generation = generation;
	if (key.generation >= GC_GENERATIONS)
		return 0;
	st = stats_of(&gc_stats, &key);
	if (!st)
		return 0;
	hist_record(&st->pauses, d);
	__sync_fetch_and_add(&st->collected, collected);
	return 0;
}

SEC("usdt")
int BPF_USDT(import_done, const char *module, int found)
{
	__u32 tgid = current_pid(), top;
	struct agent_hist *h;
	__u64 start = 0;

	if (!armed())
		return 0;
	if (!import_pop(&import_stacks, &empty_import_stack, module, &start, &top))
		return 0;
	h = stats_of(&import_stats, &tgid);
	if (h)
		hist_record(h, bpf_ktime_get_ns() - start);
	return 0;
}
