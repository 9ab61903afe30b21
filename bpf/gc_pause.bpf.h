/* GC pauses paired from gc__start to gc__done per thread, for pygc (gc.bpf.c) and the agent
 * (agent.bpf.c). */
#ifndef PYPROBE_GC_PAUSE_BPF_H
#define PYPROBE_GC_PAUSE_BPF_H

#include "common.bpf.h"

/*
 * GC pauses (pygc, the agent), timed per thread from gc__start to gc__done in a `starts` hash
 * of struct gc_start by thread: threads of one process must not pair each other's pauses.
 */
static __always_inline void gc_pause_start(void *starts, int generation)
{
	struct gc_start s = { .ts = bpf_ktime_get_ns(), .generation = generation };
	__u32 tid = current_tid();

	/* A full table leaves this pause unpaired: gc_pause_end counts it as gc_unpaired. */
	bpf_map_update_elem(starts, &tid, &s, BPF_ANY);
}

/* The pause gc__done ends at `now`: its duration and generation; false, counted, where its
 * start was not seen (the collection was already running at attach, or the table was full). */
static __always_inline bool gc_pause_end(void *starts, __u64 now, __u64 *d, __s32 *generation)
{
	__u32 tid = current_tid();
	struct gc_start *s = bpf_map_lookup_elem(starts, &tid);

	if (!s) {
		__sync_fetch_and_add(&losses.gc_unpaired, 1);
		return false;
	}
	*d = now - s->ts;
	*generation = s->generation;
	bpf_map_delete_elem(starts, &tid);
	return true;
}

#endif
