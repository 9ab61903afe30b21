// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pyflow's kernel side: every call and return, paired per thread, filtered, and streamed. */
#include "functions.bpf.h"

/* --tid: only this thread (0: all). */
const volatile __u32 only_tid = 0;
/* --subtree: everything below a call that matches --filter is shown too. */
const volatile bool subtree = false;
/* --max-depth: shown calls nest at most this deep (0: no limit). */
const volatile __u32 max_depth = 0;
/* --min-duration: calls are sent at their return, if at least this long. */
const volatile bool calls_on_return = false;
const volatile __u64 min_duration_ns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* A thread's stack is 24 KiB: allocate it when the thread first calls, not for 1024 up front. */
BY_THREAD(flow_stacks, BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC, 1024, struct flow_stack);

PER_CPU_SLOT(empty_flow_stack, struct flow_stack);

static __always_inline struct flow_stack *flow_stack(__u32 tid, bool create)
{
	return thread_entry(&flow_stacks, &empty_flow_stack, tid, create);
}

/* The frame address pairs exactly where it can be read (3.11); elsewhere the name pointer does. */
static __always_inline bool pair_by_frame(void)
{
	return source.layout.runtime_addr != 0;
}

/* Wake the reader only once this much is waiting: a wakeup per event would cost the traced
 * thread more than the event itself. The reader also drains on its own every few milliseconds. */
const volatile __u64 wakeup_bytes = 0;

/* Every event is delivered or counted in losses.events_lost, which pyflow reports. */
static __always_inline void emit(enum flow_kind kind, __u64 ts, __u64 duration, __u32 tid, __u32 fn_id, __u32 depth)
{
	struct flow_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev) {
		__sync_fetch_and_add(&losses.events_lost, 1);
		return;
	}
	ev->ts = ts;
	ev->duration_ns = duration;
	ev->pid = current_pid();
	ev->tid = tid;
	ev->fn_id = fn_id;
	ev->depth = depth;
	ev->kind = kind;
	ev->pad = 0;
	bpf_ringbuf_submit(ev, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
				   BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/*
 * Pushes a call on the thread's stack (of the function numbered `id`, when `known`), paired
 * with its return by `pair`, and streams it if shown. A `hidden` call (a generator's creation)
 * still pairs its return.
 */
static __always_inline void enter(struct flow_stack *st, __u32 tid, bool known, __u32 id, bool matched,
				  __u64 pair, bool hidden)
{
	struct flow_frame *f;
	bool shown;
	__u32 d;

	if (!stack_push(&st->depth, FLOW_MAX_DEPTH, &d))
		return;
	matched = known && matched && !hidden;
	shown = known && !hidden && (matched || (subtree && st->matched > 0)) &&
		(!max_depth || st->shown < max_depth);
	f = &st->frames[d];
	f->pair = pair;
	f->fn_id = id;
	f->flags = (shown ? FLOW_FRAME_SHOWN : 0) | (matched ? FLOW_FRAME_MATCHED : 0);
	if (matched)
		st->matched++;
	if (shown)
		st->shown++;
	/* Stamped last, so that the probe's own work is not charged to the call. */
	f->ts = bpf_ktime_get_ns();
	if (shown && !calls_on_return)
		emit(FLOW_ENTRY, f->ts, 0, tid, f->fn_id, st->shown - 1);
}

SEC("usdt")
int call_entry(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	struct flow_stack *st;
	struct fn_key key = {};
	struct fn_entry *e;
	__u64 frame;

	if (!armed() || (only_tid && tid != only_tid))
		return 0;
	st = flow_stack(tid, true);
	if (!st)
		return 0;
	frame = current_frame(ctx);
	e = lookup_key(ctx, &key, function_key_of(ctx, source.name_reg_entry, frame_code(frame), &key));
	enter(st, tid, e != NULL, e ? e->id : 0, e && e->matched, pair_by_frame() ? frame : key.name_ptr, false);
	return 0;
}

/* The eval-frame source: each frame _PyEval_EvalFrameDefault starts evaluating; with the perf
 * trampoline, known functions are found by their stub, without reading their code object. */
SEC("uprobe")
int eval_entry(struct pt_regs *ctx)
{
	__u64 frame = eval_frame_arg(ctx), sp = eval_call_sp(ctx), stub;
	__u32 tid = current_tid();
	struct fn_slot *slot = NULL;
	struct flow_stack *st;
	struct fn_key key = {};
	struct fn_entry *e;

	if (!armed() || (only_tid && tid != only_tid))
		return 0;
	st = flow_stack(tid, true);
	if (!st)
		return 0;
	stub = trampoline_stub(ctx, sp);
	if (stub) {
		slot = slot_of(stub);
		if (slot && slot->code == stub && READ_ONCE(slot->name_ptr) == STUB_SLOT) {
			barrier();
			enter(st, tid, true, slot->id, slot->matched, sp, slot->generator && creates_generator(frame));
			return 0;
		}
	}
	if (!eval_frame_key(frame, &key))
		return 0;
	e = lookup_key(ctx, &key, true);
	if (stub && e) {
		struct fn_key stub_key = { .code = stub, .name_ptr = STUB_SLOT };

		claim_slot(slot, &stub_key, e);
	}
	/* A generator's creation is not a call of it (cProfile agrees): its resumes are. */
	enter(st, tid, e != NULL, e ? e->id : 0, e && e->matched, sp, e && e->generator && creates_generator(frame));
	return 0;
}

/* Pops the top frame; a shown one is sent as a return (or, with --min-duration, a call). */
static __always_inline void pop_frame(struct flow_stack *st, __u32 top, __u32 tid, __u64 now, enum flow_kind kind)
{
	struct flow_frame *f = &st->frames[top & (FLOW_MAX_DEPTH - 1)];
	__u64 d;

	st->depth = top;
	if (kind == FLOW_UNWOUND)
		__sync_fetch_and_add(&losses.exits_unseen, 1);
	if ((f->flags & FLOW_FRAME_MATCHED) && st->matched > 0)
		st->matched--;
	if (!(f->flags & FLOW_FRAME_SHOWN) || st->shown == 0)
		return;
	st->shown--;
	d = now - f->ts;
	if (!calls_on_return)
		emit(kind, now, d, tid, f->fn_id, st->shown);
	else if (d >= min_duration_ns)
		emit(FLOW_CALL, f->ts, d, tid, f->fn_id, st->shown);
}

/* Frees a thread's stack once nothing is open on it: its outermost frame returned (the thread
 * ended, as Python threads end), so a process that starts a thread per request stays traced. */
static __always_inline void release_if_empty(struct flow_stack *st, __u32 tid)
{
	if (st->depth == 0)
		bpf_map_delete_elem(&flow_stacks, &tid);
}

SEC("usdt")
int call_return(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns(), pair;
	__u32 tid = current_tid(), top, k;
	struct flow_stack *st;

	if (!armed() || (only_tid && tid != only_tid))
		return 0;
	st = flow_stack(tid, false);
	if (!st || st->depth == 0) {
		/* A call already running when tracing began: its entry was never seen. */
		__sync_fetch_and_add(&losses.unpaired_returns, 1);
		return 0;
	}
	top = st->depth - 1;
	if (top >= FLOW_MAX_DEPTH) {
		st->depth = top;
		return 0;
	}
	pair = pair_by_frame() ? current_frame(ctx) : name_arg(ctx, source.name_reg_return);
	if (st->frames[top & (FLOW_MAX_DEPTH - 1)].pair == pair) {
		pop_frame(st, top, tid, now, FLOW_RETURN);
		release_if_empty(st, tid);
		return 0;
	}
	/*
	 * Not the top frame: a return whose entry was never seen (its call began before the probes
	 * were live) leaves the stack alone. Where returns can be missing, the frames above the
	 * returning one exited without one: unwind them.
	 */
	if (source.returns_may_miss) {
		for (k = 1; k <= UNWIND_SEARCH; k++) {
			if (k > top)
				break;
			if (st->frames[(top - k) & (FLOW_MAX_DEPTH - 1)].pair != pair)
				continue;
			for (__u32 j = 0; j < UNWIND_SEARCH; j++) {
				if (j >= k)
					break;
				pop_frame(st, top - j, tid, now, FLOW_UNWOUND);
			}
			pop_frame(st, top - k, tid, now, FLOW_RETURN);
			release_if_empty(st, tid);
			return 0;
		}
	}
	__sync_fetch_and_add(&losses.unpaired_returns, 1);
	return 0;
}

struct unwind {
	struct flow_stack *st;
	__u64 sp;
	__u64 now;
	__u32 tid;
};

/* One frame deeper than the returning one (pushed at a lower stack address): it ended unseen. */
static long unwind_deeper(__u64 i, void *ctx)
{
	struct unwind *u = ctx;
	struct flow_stack *st = u->st;
	__u32 top;

	if (!st || st->depth == 0 || st->depth > FLOW_MAX_DEPTH)
		return 1;
	top = st->depth - 1;
	if (st->frames[top & (FLOW_MAX_DEPTH - 1)].pair >= u->sp)
		return 1;
	pop_frame(st, top, u->tid, u->now, FLOW_UNWOUND);
	return 0;
}

/*
 * The eval-frame source's returns (uprobes on the function's `ret`s). Frames deeper than the
 * returning one ended without a return seen, and are unwound.
 */
SEC("uprobe")
int eval_return(struct pt_regs *ctx)
{
	struct unwind u = { .now = bpf_ktime_get_ns(), .sp = eval_return_sp(ctx), .tid = current_tid() };
	struct flow_stack *st;
	__u32 top;

	if (!armed() || (only_tid && u.tid != only_tid) || !u.sp)
		return 0;
	st = flow_stack(u.tid, false);
	if (!st || st->depth == 0) {
		__sync_fetch_and_add(&losses.unpaired_returns, 1);
		return 0;
	}
	if (st->depth > FLOW_MAX_DEPTH) {
		st->depth--;
		return 0;
	}
	u.st = st;
	bpf_loop(FLOW_MAX_DEPTH, unwind_deeper, &u, 0);
	top = st->depth - 1;
	if (st->depth == 0 || st->frames[top & (FLOW_MAX_DEPTH - 1)].pair != u.sp) {
		/* Its call began before the probes were live. */
		__sync_fetch_and_add(&losses.unpaired_returns, 1);
		release_if_empty(st, u.tid);
		return 0;
	}
	pop_frame(st, top, u.tid, u.now, FLOW_RETURN);
	release_if_empty(st, u.tid);
	return 0;
}

/* Attached where it never fires, only to hold the line probe's semaphore up (src/kernel/links.rs). */
SEC("uprobe")
int tracing_mode(void *ctx)
{
	return 0;
}
