// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Processes forked from the traced one during a session: counted, so that what pyprobe does not
 * trace (a worker pool's children, each with calls of its own) is said rather than missing, and
 * with --subprocesses, those that left the traced program for another (exec) are said too. */
#include "common.bpf.h"
#include <bpf/bpf_core_read.h>

/* Only the fields read, relocated against the running kernel's BTF (CO-RE). */
struct task_struct {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

/* What a process of the family is. */
#define TRACED 1
#define FORKED 2
#define EXECED 3

/* The traced process and every process forked from it (or from those) while armed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} family SEC(".maps");

/* Processes forked from the family, and those that could not join it (their own children then
 * go uncounted: the count is a floor); forked ones that ran another program. */
__u64 births = 0;
__u64 family_full = 0;
__u64 execs = 0;

SEC("tp_btf/sched_process_fork")
int child_born(__u64 *ctx)
{
	struct task_struct *parent = (void *)ctx[0], *child = (void *)ctx[1];
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	__u8 forked = FORKED;

	/* A new thread shares its creator's process: only a new process is a child. */
	if (!armed() || child_tgid == parent_tgid || !bpf_map_lookup_elem(&family, &parent_tgid))
		return 0;
	__sync_fetch_and_add(&births, 1);
	if (bpf_map_update_elem(&family, &child_tgid, &forked, BPF_ANY))
		__sync_fetch_and_add(&family_full, 1);
	return 0;
}

/* A forked process that runs another program: counted once (a later exec of it is not news). */
SEC("tp_btf/sched_process_exec")
int child_execed(__u64 *ctx)
{
	__u32 tgid = current_pid();
	__u8 *what;

	if (!armed())
		return 0;
	what = bpf_map_lookup_elem(&family, &tgid);
	if (what && *what == FORKED) {
		*what = EXECED;
		__sync_fetch_and_add(&execs, 1);
	}
	return 0;
}
