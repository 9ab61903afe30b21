// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pygc's kernel side: GC pauses timed per thread, bucketed per generation, long ones streamed. */
#include "common.bpf.h"

/* Pauses at least this long are also sent as events (with stream_pauses set, from --min-pause). */
const volatile bool stream_pauses = false;
const volatile __u64 min_pause_ns = 0;

/* Collections whose generation is outside 0..GC_GENERATIONS-1: counted, not bucketed. */
__u64 other_generation = 0;

/* Keyed by thread, not process: threads of one process must not pair each other's pauses. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct gc_start);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GC_GENERATIONS);
	__type(key, __u32);
	__type(value, struct gc_gen_stats);
} generations SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} pauses SEC(".maps");

SEC("usdt")
int BPF_USDT(gc_start, int generation)
{
	struct gc_start s = { .generation = generation };
	__u32 tid = current_tid();

	if (!armed())
		return 0;
	s.ts = bpf_ktime_get_ns();
	/* A full table leaves this pause unpaired: gc_done counts it as gc_unpaired. */
	bpf_map_update_elem(&starts, &tid, &s, BPF_ANY);
	return 0;
}

static __always_inline void stream_pause(__u64 now, __u64 d, long collected, __s32 generation)
{
	struct gc_event *e;

	e = bpf_ringbuf_reserve(&pauses, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&losses.events_lost, 1);
		return;
	}
	e->ts = now;
	e->duration_ns = d;
	e->collected = collected;
	e->pid = current_pid();
	e->tid = current_tid();
	e->generation = generation;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

SEC("usdt")
int BPF_USDT(gc_done, long collected)
{
	__u32 tid = current_tid(), gen;
	struct gc_gen_stats *st;
	struct gc_start *s;
	__s32 generation;
	__u64 now, d;

	if (!armed())
		return 0;
	now = bpf_ktime_get_ns();
	s = bpf_map_lookup_elem(&starts, &tid);
	if (!s) {
		/* The collection was already running at attach (or the start table was full). */
		__sync_fetch_and_add(&losses.gc_unpaired, 1);
		return 0;
	}
	d = now - s->ts;
	generation = s->generation;
	bpf_map_delete_elem(&starts, &tid);

	gen = generation;
	st = gen < GC_GENERATIONS ? bpf_map_lookup_elem(&generations, &gen) : NULL;
	if (st) {
		__sync_fetch_and_add(&st->count, 1);
		__sync_fetch_and_add(&st->total_ns, d);
		__sync_fetch_and_add(&st->collected, collected);
		if (d > st->max_ns)
			st->max_ns = d; /* collections hold the GIL: no two of one process race here */
		__sync_fetch_and_add(&st->hist[hist_bucket(d)], 1);
	} else {
		__sync_fetch_and_add(&other_generation, 1);
	}
	if (stream_pauses && d >= min_pause_ns)
		stream_pause(now, d, collected, generation);
	return 0;
}
