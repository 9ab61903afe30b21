/* pycount's watchpoint source: a hardware data watchpoint on the first code unit of each
 * filtered function's bytecode, which the interpreter reads when a call of it begins. A part of
 * count.bpf.c, included at its end (its hits are count's; userspace turns them into calls). */
#ifndef PYPROBE_WATCH_BPF_H
#define PYPROBE_WATCH_BPF_H

#include <linux/bpf_perf_event.h>

/* Hits per (unit, accessing instruction): the interpreter also touches the unit at warm-up
 * (the specializer rewriting RESUME) and 3.12 reads it twice per call; userspace tells the
 * calls from the rest by the instruction (src/source/watch/calibrate.rs), so the kernel only
 * counts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct wp_key);
	__type(value, __u64);
} wp_hits SEC(".maps");

SEC("perf_event")
int wp_hit(struct bpf_perf_event_data *ctx)
{
	/* A breakpoint event's sample address is the watched address; a data watchpoint traps
	 * after the access, so the ip is the instruction after it. */
	struct wp_key key = { .addr = ctx->addr, .ip = ctx->regs.rip };

	if (armed())
		map_increment(&wp_hits, &key, &losses.hist_full);
	return 0;
}

#endif
