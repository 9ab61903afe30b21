/* Module loads paired from import__find__load__start to __done per thread, for pyprobe imports
 * (imports.bpf.c) and the agent (agent.bpf.c). */
#ifndef PYPROBE_IMPORT_PAIRING_BPF_H
#define PYPROBE_IMPORT_PAIRING_BPF_H

#include "common.bpf.h"

/*
 * A program's import pairing: its import_stacks (a hash by thread of `entries`, made with
 * `flags`), the zeroed value a thread's stack starts from, and the import_start program that
 * pushes each load; the program's own import_done pops it (import_pop) and reports it.
 */
#define IMPORT_PAIRING(entries, flags)                                                             \
	BY_THREAD(import_stacks, BPF_MAP_TYPE_HASH, flags, entries, struct import_stack);         \
	PER_CPU_SLOT(empty_import_stack, struct import_stack);                                     \
                                                                                                   \
	SEC("usdt")                                                                                \
	int BPF_USDT(import_start, const char *module)                                             \
	{                                                                                          \
		if (armed())                                                                       \
			import_push(&import_stacks, &empty_import_stack, module);                  \
		return 0;                                                                          \
	}

/*
 * Module loads (pyprobe imports, the agent), paired per thread on a stack of struct
 * import_stack in a `stacks` hash by thread (`empty`: its zeroed value, see thread_entry), at
 * most MAX_IMPORT_DEPTH deep (see stack_push).
 */
static __always_inline void import_push(void *stacks, void *empty, const char *module)
{
	struct import_stack *st = thread_entry(stacks, empty, current_tid(), true);
	__u32 d;

	if (!st || !stack_push(&st->depth, MAX_IMPORT_DEPTH, &d))
		return;
	st->ts[d] = bpf_ktime_get_ns();
	st->module_ptr[d] = (__u64)module;
}

/* The load of `module` ends: its start and its depth (0: outermost). False where it cannot be
 * paired: begun before attach or another module's (counted as unpaired), or too deep (counted
 * at its start). */
static __always_inline bool import_pop(void *stacks, void *empty, const char *module,
				       __u64 *start, __u32 *depth)
{
	__u32 tid = current_tid(), top;
	struct import_stack *st = thread_entry(stacks, empty, tid, false);
	__u64 opened = 0;

	if (!st || st->depth == 0) {
		__sync_fetch_and_add(&losses.unpaired_dones, 1);
		return false;
	}
	top = st->depth - 1;
	st->depth = top;
	if (top < MAX_IMPORT_DEPTH) {
		*start = st->ts[top];
		opened = st->module_ptr[top];
	}
	if (top == 0)
		/* Nothing open on this thread: free its entry, so ended threads do not fill the map. */
		bpf_map_delete_elem(stacks, &tid);
	if (top >= MAX_IMPORT_DEPTH)
		return false;
	if (opened != (__u64)module) {
		__sync_fetch_and_add(&losses.unpaired_dones, 1);
		return false;
	}
	*depth = top;
	return true;
}

#endif
