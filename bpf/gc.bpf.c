// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pygc's kernel side: GC pauses timed per thread, bucketed per generation, long ones streamed. */
#include "common.bpf.h"
#include "gc_pause.bpf.h"

/* Pauses at least this long are also sent as events (with stream_pauses set, from --min-pause). */
const volatile bool stream_pauses = false;
const volatile __u64 min_pause_ns = 0;

/* Collections whose generation is outside 0..GC_GENERATIONS-1: counted, not bucketed. */
__u64 other_generation = 0;

BY_THREAD(starts, BPF_MAP_TYPE_HASH, 0, 10240, struct gc_start);

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
	if (armed())
		gc_pause_start(&starts, generation);
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
	struct gc_gen_stats *st;
	__s32 generation;
	__u64 now, d;
	__u32 gen;

	if (!armed())
		return 0;
	now = bpf_ktime_get_ns();
	if (!gc_pause_end(&starts, now, &d, &generation))
		return 0;
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
