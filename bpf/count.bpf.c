// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pycount's kernel side: per-function call counts and, with --latency, paired entry/return timing. */
#include "functions.bpf.h"

/* With --latency the entry probe runs too, and returns are paired with entries per thread. */
const volatile bool timed = false;

/* --tid: only this thread's calls (0: every thread's). */
const volatile __u32 only_tid = 0;

static __always_inline bool thread_wanted(void)
{
	return !only_tid || current_tid() == only_tid;
}


struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct hist_key);
	__type(value, __u64);
} latency_hist SEC(".maps");

/* Threads' stacks: direct-mapped by thread id (an inlined array access), the hash for collisions. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STACK_SLOTS);
	__type(key, __u32);
	__type(value, struct call_stack);
} stack_slots SEC(".maps");

BY_THREAD(stacks, BPF_MAP_TYPE_HASH, 0, 1024, struct call_stack);

PER_CPU_SLOT(empty_stack, struct call_stack);

static __always_inline struct call_stack *thread_stack(__u32 tid, bool create)
{
	__u32 idx = tid & (STACK_SLOTS - 1);
	struct call_stack *st;

	st = bpf_map_lookup_elem(&stack_slots, &idx);
	if (st && st->tid == tid)
		return st;
	if (st && create && st->tid == 0 && __sync_val_compare_and_swap(&st->tid, 0, tid) == 0) {
		st->depth = 0;
		return st;
	}
	return thread_entry(&stacks, &empty_stack, tid, create);
}

static __always_inline void hist_add(__u32 id, __u64 d)
{
	struct hist_key hk = { .fn_id = id, .bucket = hist_bucket(d) };

	map_increment(&latency_hist, &hk, &losses.hist_full);
}

/* Pushes an entry on the thread's stack; `pair` is what its return will be matched by. */
static __always_inline void push_entry(__u64 pair, __u64 name_ptr, __u64 code, __u32 lineno)
{
	struct call_stack *st = thread_stack(current_tid(), true);
	__u32 d;

	if (!st || !stack_push(&st->depth, MAX_DEPTH, &d))
		return;
	st->ts[d] = bpf_ktime_get_ns();
	st->pair[d] = pair;
	st->name_ptr[d] = name_ptr;
	st->code[d] = code;
	st->lineno[d] = lineno;
	st->callees_ns[d] = 0;
}

/* What pop_entry found, when not an entry's timestamp. */
#define POP_UNPAIRED 0 /* the entry was never seen: the call was running at attach */
#define POP_TOO_DEEP 1 /* nested beyond MAX_DEPTH: already counted as too_deep at its entry */

/* A thread's outermost frame returns when the thread ends: free its stack for new threads. */
static __always_inline void release_if_empty(struct call_stack *st)
{
	__u32 tid = current_tid();

	if (st->depth)
		return;
	if (st->tid == tid)
		st->tid = 0;
	else
		bpf_map_delete_elem(&stacks, &tid);
}

/* Takes the entry at `top` off the stack: its time, its callees' time, and its function's key.
 * Its duration goes to its caller's callees, which is what makes the caller's own time. */
static __always_inline __u64 take_entry(struct call_stack *st, __u32 top, struct fn_key *key, __u64 *callees)
{
	__u64 ts;

	top &= MAX_DEPTH - 1;
	key->code = st->code[top];
	key->name_ptr = st->name_ptr[top];
	key->lineno = st->lineno[top];
	ts = st->ts[top];
	*callees = st->callees_ns[top];
	if (top > 0)
		st->callees_ns[(top - 1) & (MAX_DEPTH - 1)] += bpf_ktime_get_ns() - ts;
	st->depth = top;
	release_if_empty(st);
	return ts;
}

/*
 * The thread's stack and its top entry's index, for a pop; NULL with `status` where there is
 * nothing to pop (POP_UNPAIRED) or the top is deeper than the stack holds (POP_TOO_DEEP, the
 * depth dropped by one).
 */
static __always_inline struct call_stack *stack_top(__u32 *top, __u64 *status)
{
	struct call_stack *st = thread_stack(current_tid(), false);

	if (!st || st->depth == 0) {
		*status = POP_UNPAIRED;
		return NULL;
	}
	*top = st->depth - 1;
	if (*top >= MAX_DEPTH) {
		st->depth = *top;
		*status = POP_TOO_DEEP;
		return NULL;
	}
	return st;
}

/*
 * Pops the thread's entry for a return paired by `pair`: the top one, or where returns can go
 * missing, one a few frames down (the frames above it ended unseen, counted in exits_unseen).
 */
static __always_inline __u64 pop_entry(__u64 pair, struct fn_key *key, __u64 *callees)
{
	__u64 status;
	__u32 top, k;
	struct call_stack *st = stack_top(&top, &status);

	if (!st)
		return status;
	if (st->pair[top] != pair) {
		if (!source.returns_may_miss)
			return POP_UNPAIRED;
		for (k = 1; k <= UNWIND_SEARCH; k++) {
			if (k > top)
				return POP_UNPAIRED;
			if (st->pair[(top - k) & (MAX_DEPTH - 1)] == pair)
				break;
		}
		if (k > UNWIND_SEARCH)
			return POP_UNPAIRED;
		__sync_fetch_and_add(&losses.exits_unseen, k);
		top -= k;
	}
	return take_entry(st, top, key, callees);
}

/*
 * Pops the entry of the eval-frame call that returns with the stack pointer `sp`. The stack
 * grows down, so entries pushed with a lower stack pointer belong to frames that ended without
 * their return being seen (a return site pyprobe did not probe).
 */
static __always_inline __u64 pop_entry_at(__u64 sp, struct fn_key *key, __u64 *callees)
{
	__u64 status;
	__u32 top, unseen = 0;
	struct call_stack *st = stack_top(&top, &status);

	if (!st)
		return status;
	for (int k = 0; k < MAX_DEPTH; k++) {
		if (st->pair[top & (MAX_DEPTH - 1)] >= sp)
			break;
		unseen++;
		if (top == 0) {
			/* Every entry was deeper: this call was running at attach. */
			st->depth = 0;
			release_if_empty(st);
			__sync_fetch_and_add(&losses.exits_unseen, unseen);
			return POP_UNPAIRED;
		}
		top--;
	}
	if (unseen)
		__sync_fetch_and_add(&losses.exits_unseen, unseen);
	if (st->pair[top & (MAX_DEPTH - 1)] != sp) {
		st->depth = top + 1;
		return POP_UNPAIRED;
	}
	return take_entry(st, top, key, callees);
}

static __always_inline void record_duration(struct fn_stats *s, __u32 id, __u64 start, __u64 callees)
{
	__u64 d;

	if (start == POP_TOO_DEEP)
		return;
	if (start == POP_UNPAIRED) {
		__sync_fetch_and_add(&losses.unpaired_returns, 1);
		return;
	}
	d = bpf_ktime_get_ns() - start;
	__sync_fetch_and_add(&s->total_ns, d);
	/* A callee's duration was taken a moment after its caller's clock: never below zero. */
	__sync_fetch_and_add(&s->own_ns, d > callees ? d - callees : 0);
	__sync_fetch_and_add(&s->timed, 1);
	if (d > s->max_ns)
		s->max_ns = d; /* a racing CPU may lose a max by a hair; counts stay exact */
	hist_add(id, d);
}

/*
 * Counts one call of the function with this key and returns its statistics block; NULL when
 * it does not match --filter, or (`frame`: the eval-frame source) for a generator's creation,
 * which cProfile does not count either: its resumes are the calls. `*creation` tells which.
 */
static __always_inline struct fn_stats *count_key(struct pt_regs *ctx, struct fn_key *key, bool has_code,
						   __u64 frame, bool *creation, __u32 *id)
{
	struct fn_slot *slot = NULL;
	struct fn_entry *e;

	if (has_code) {
		slot = slot_of(key->code);
		if (slot && slot->code == key->code && READ_ONCE(slot->name_ptr) == key->name_ptr &&
		    slot->lineno == key->lineno) {
			barrier();
			*creation = slot->generator && creates_generator(frame);
			if (!slot->matched || *creation)
				return NULL;
			__sync_fetch_and_add(&slot->stats.count, 1);
			*id = slot->id;
			return &slot->stats;
		}
	}
	e = lookup_key(ctx, key, has_code);
	if (!e)
		return NULL;
	claim_slot(slot, key, e);
	*creation = e->generator && creates_generator(frame);
	if (!e->matched || *creation)
		return NULL;
	__sync_fetch_and_add(&e->stats.count, 1);
	*id = e->id;
	return &e->stats;
}

/* Records the duration of the call a return paired with (the entry's key names it, or for a
 * call seen through its trampoline stub, the stub's slot). */
static __always_inline void record_return(__u64 start, struct fn_key *key, __u64 callees)
{
	struct fn_slot *slot;
	struct fn_entry *e;

	if (start == POP_UNPAIRED || start == POP_TOO_DEEP) {
		record_duration(NULL, 0, start, 0);
		return;
	}
	if (!key->code)
		return;
	if (key->name_ptr == STUB_SLOT) {
		slot = slot_of(key->code);
		if (slot && slot->code == key->code && slot->matched)
			record_duration(&slot->stats, slot->id, start, callees);
		return;
	}
	key->pid = key_pid();
	e = bpf_map_lookup_elem(&functions, key);
	if (e && e->matched)
		record_duration(&e->stats, e->id, start, callees);
}

SEC("usdt")
int call_entry(struct pt_regs *ctx)
{
	struct fn_key key = {};
	bool creation;
	__u32 id;

	if (!armed() || !thread_wanted())
		return 0;
	if (!source.count_on_entry) {
		push_entry(name_arg(ctx, source.name_reg_entry), 0, 0, 0);
		return 0;
	}
	count_key(ctx, &key, function_key(ctx, source.name_reg_entry, &key), 0, &creation, &id);
	if (timed)
		push_entry(key.name_ptr, key.name_ptr, key.code, key.lineno);
	return 0;
}

SEC("usdt")
int call_return(struct pt_regs *ctx)
{
	struct fn_key key = {};
	struct fn_stats *s;
	bool creation;
	__u64 start, callees = 0;
	__u32 id = 0;

	if (!armed() || !thread_wanted())
		return 0;
	if (source.count_on_entry) {
		/* The entry's key is the function's identity; the return's line is not. */
		if (timed)
			record_return(pop_entry(name_arg(ctx, source.name_reg_return), &key, &callees), &key,
				      callees);
		return 0;
	}
	s = count_key(ctx, &key, function_key(ctx, source.name_reg_return, &key), 0, &creation, &id);
	if (!timed)
		return 0;
	start = pop_entry(key.name_ptr, &key, &callees);
	if (s)
		record_duration(s, id, start, callees);
	return 0;
}

/*
 * While the shared probe hands a function over to its breakpoints (src/source/breakpoints/), a call
 * both see is counted once, by the breakpoint: it marks the thread with the stack pointer at
 * the stub, which the same call's eval-frame entry finds 16 bytes above its own (the stub's
 * `sub $8, %rsp` and its `call`).
 */
bool bp_handover = false;

BY_THREAD(bp_counted, BPF_MAP_TYPE_HASH, 0, 4096, __u64);

static __always_inline bool counted_by_breakpoint(__u64 call_sp)
{
	__u32 tid = current_tid();
	__u64 *sp = bpf_map_lookup_elem(&bp_counted, &tid);

	if (!sp || *sp != call_sp + 16)
		return false;
	*sp = 0;
	return true;
}

/* A call through a stub whose slot is already claimed: counted (a generator's creation is no
 * call) and, with --latency, its entry pushed, without reading the code object. False where
 * the slot belongs to no stub yet. */
static __always_inline bool count_stub_call(struct fn_slot *slot, __u64 stub, __u64 frame, __u64 sp)
{
	bool creation;

	if (!slot || slot->code != stub || READ_ONCE(slot->name_ptr) != STUB_SLOT)
		return false;
	barrier();
	creation = slot->generator && creates_generator(frame);
	if (slot->matched && !creation)
		__sync_fetch_and_add(&slot->stats.count, 1);
	if (timed)
		push_entry(sp, STUB_SLOT, creation ? 0 : stub, 0);
	return true;
}

/* A frame that starts evaluating, called through the trampoline stub `stub` (0: none): counted
 * on the stub's slot once the slot is claimed, else by its code object, whose entry then claims
 * the slot for the stub; with --latency, its entry pushed at the call's sp. The eval-frame
 * source and the breakpoint source (breakpoints.bpf.h) count every call here. */
static __always_inline void count_frame(struct pt_regs *regs, __u64 stub, __u64 frame, __u64 sp)
{
	struct fn_slot *slot = NULL;
	struct fn_key key = {};
	struct fn_entry *e;
	bool creation = false;
	__u32 id;

	if (stub) {
		slot = slot_of(stub);
		if (count_stub_call(slot, stub, frame, sp))
			return;
	}
	if (!eval_frame_key(frame, &key))
		return;
	count_key(regs, &key, true, frame, &creation, &id);
	if (stub && (e = bpf_map_lookup_elem(&functions, &key))) {
		struct fn_key stub_key = { .code = stub, .name_ptr = STUB_SLOT };

		claim_slot(slot, &stub_key, e);
	}
	if (creation)
		key.code = 0; /* a generator's creation: its return pairs, and records nothing */
	if (timed)
		push_entry(sp, key.name_ptr, key.code, key.lineno);
}

/* The eval-frame source: each frame _PyEval_EvalFrameDefault starts evaluating. With the perf
 * trampoline, a function's stub (one read of the stack) finds its slot without reading its
 * code object; the code object is read the first time, and where there is no stub. */
SEC("uprobe")
int eval_entry(struct pt_regs *ctx)
{
	__u64 sp = eval_call_sp(ctx);

	if (!armed() || !thread_wanted())
		return 0;
	if (bp_handover && counted_by_breakpoint(sp))
		return 0;
	count_frame(ctx, trampoline_stub(ctx, sp), eval_frame_arg(ctx), sp);
	return 0;
}

SEC("uprobe")
int eval_return(struct pt_regs *ctx)
{
	struct fn_key key = {};
	__u64 sp, callees = 0;

	if (!armed() || !timed || !thread_wanted())
		return 0;
	sp = eval_return_sp(ctx);
	if (sp)
		record_return(pop_entry_at(sp, &key, &callees), &key, callees);
	return 0;
}

/*
 * 3.13 pushes the __init__ frame of a plain class's instantiation itself, without calling
 * _PyEval_EvalFrameDefault (CALL_ALLOC_AND_ENTER_INIT): a uprobe on its allocation call sees
 * each, with the class in rdi. Counted, not timed: the frame has no return of its own.
 */
SEC("uprobe")
int init_entry(struct pt_regs *ctx)
{
	struct fn_key key = {};
	bool ok = true, creation;
	__u64 init;
	__u32 id;

	if (!armed() || !thread_wanted())
		return 0;
	init = read_user_u64(ctx->rdi + source.eval.type_init, &ok);
	key.code = ok && init ? read_user_u64(init + source.eval.func_code, &ok) : 0;
	key.name_ptr = ok && key.code ? read_user_u64(key.code + source.eval.co_name, &ok) : 0;
	if (ok && key.code &&
	    bpf_probe_read_user(&key.lineno, sizeof(key.lineno), (void *)(key.code + source.eval.co_firstlineno)))
		ok = false;
	if (!ok || !key.name_ptr) {
		__sync_fetch_and_add(&losses.code_read_errors, 1);
		return 0;
	}
	count_key(ctx, &key, true, 0, &creation, &id);
	return 0;
}

/* Attached where it never fires, only to hold the line probe's semaphore up (src/kernel/links.rs). */
SEC("uprobe")
int tracing_mode(void *ctx)
{
	return 0;
}

#include "breakpoints.bpf.h"
#include "watch.bpf.h"
