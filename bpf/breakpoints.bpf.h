/* pycount's breakpoint source: hardware execute breakpoints on filtered functions' trampoline
 * stubs (a call) and on the instruction after each stub's call (its return). A part of
 * count.bpf.c, included at its end: a hit counts through count.bpf.c's count_frame and
 * record_return, as the eval-frame source's call does, so the two sources' counts are one table. */
#ifndef PYPROBE_BREAKPOINTS_BPF_H
#define PYPROBE_BREAKPOINTS_BPF_H

#include <linux/bpf_perf_event.h>

/*
 * A hit on a stub's first instruction: the stub was called with the thread state in rdi and
 * the frame in rsi (Python/asm_trampoline.S), and the debug exception's registers are the
 * thread's own. Counted as eval_entry counts, keyed by the stub.
 */
SEC("perf_event")
int bp_entry(struct bpf_perf_event_data *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)&ctx->regs;
	__u64 sp = regs->rsp;
	__u32 tid;

	if (!armed() || !thread_wanted())
		return 0;
	if (bp_handover) {
		tid = current_tid();
		bpf_map_update_elem(&bp_counted, &tid, &sp, BPF_ANY);
	}
	count_frame(regs, regs->rip, regs->rsi, sp);
	return 0;
}

/* A hit after the stub's call: the call returned (by value or exception, or a generator
 * yielded), with the stub's stack pointer 8 below its entry's. */
SEC("perf_event")
int bp_return(struct bpf_perf_event_data *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)&ctx->regs;
	struct fn_key key = {};
	__u64 callees = 0;

	if (armed() && timed && thread_wanted())
		record_return(pop_entry_at(regs->rsp + 8, &key, &callees), &key, callees);
	return 0;
}

#endif
