// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pyprobe imports' kernel side: module loads paired per thread, each streamed with its times. */
#include "common.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} import_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct import_stack);
} import_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct import_stack);
} empty_import_stack SEC(".maps");

static __always_inline struct import_stack *import_stack_of(__u32 tid, bool create)
{
	return thread_entry(&import_stacks, &empty_import_stack, tid, create);
}

SEC("usdt")
int BPF_USDT(import_start, const char *module)
{
	struct import_stack *st;
	__u32 d;

	if (!armed())
		return 0;
	st = import_stack_of(current_tid(), true);
	if (!st)
		return 0;
	d = st->depth;
	if (d < MAX_IMPORT_DEPTH) {
		st->ts[d] = bpf_ktime_get_ns();
		st->module_ptr[d] = (__u64)module;
	} else {
		/* Still counted in depth, so the dones above the limit pop nothing below it. */
		__sync_fetch_and_add(&losses.too_deep, 1);
	}
	st->depth = d + 1;
	return 0;
}

SEC("usdt")
int BPF_USDT(import_done, const char *module, int found)
{
	struct import_stack *st;
	struct import_event *ev;
	__u32 top;
	__u64 start;
	long n;
	char last = 0;

	if (!armed())
		return 0;
	st = import_stack_of(current_tid(), false);
	if (!st || st->depth == 0) {
		/* Started before pyprobe attached. */
		__sync_fetch_and_add(&losses.unpaired_dones, 1);
		return 0;
	}
	top = st->depth - 1;
	st->depth = top;
	if (top >= MAX_IMPORT_DEPTH)
		return 0;
	if (st->module_ptr[top] != (__u64)module) {
		__sync_fetch_and_add(&losses.unpaired_dones, 1);
		return 0;
	}
	start = st->ts[top];
	if (top == 0) {
		/* Nothing open on this thread: free its stack, so ended threads do not fill the map. */
		__u32 tid = current_tid();

		bpf_map_delete_elem(&import_stacks, &tid);
	}
	ev = bpf_ringbuf_reserve(&import_events, sizeof(*ev), 0);
	if (!ev) {
		__sync_fetch_and_add(&losses.events_lost, 1);
		return 0;
	}
	ev->start_ns = start;
	ev->end_ns = bpf_ktime_get_ns();
	ev->pid = current_pid();
	ev->tid = current_tid();
	ev->depth = top;
	ev->found = found;
	n = bpf_probe_read_user_str(ev->module, MODULE_LEN, module);
	if (n == MODULE_LEN)
		bpf_probe_read_user(&last, 1, module + MODULE_LEN - 1);
	ev->module_truncated = last != 0;
	bpf_ringbuf_submit(ev, 0);
	return 0;
}
