// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pyprobe imports' kernel side: module loads paired per thread, each streamed with its times. */
#include "common.bpf.h"
#include "import_pairing.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} import_events SEC(".maps");

IMPORT_PAIRING(1024, 0)

SEC("usdt")
int BPF_USDT(import_done, const char *module, int found)
{
	struct import_event *ev;
	__u64 start = 0;
	__u32 top = 0;
	long n;
	char last = 0;

	if (!armed())
		return 0;
	if (!import_pop(&import_stacks, &empty_import_stack, module, &start, &top))
		return 0;
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
