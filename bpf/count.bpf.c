// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pycount's kernel side: per-function call counts and, with --latency, paired entry/return timing. */
#include "functions.bpf.h"

/* With --latency the entry probe runs too, and returns are paired with entries per thread. */
const volatile bool timed = false;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FN_SLOTS);
	__type(key, __u32);
	__type(value, struct fn_slot);
} fn_slots SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct call_stack);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct call_stack);
} empty_stack SEC(".maps");

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

static __always_inline void push_entry(__u64 name_ptr, __u64 code, __u32 lineno)
{
	struct call_stack *st = thread_stack(current_tid(), true);
	__u32 d;

	if (!st)
		return;
	d = st->depth;
	if (d < MAX_DEPTH) {
		st->ts[d] = bpf_ktime_get_ns();
		st->name_ptr[d] = name_ptr;
		st->code[d] = code;
		st->lineno[d] = lineno;
	} else {
		/* Still counted in depth, so the returns above the limit pop nothing below it. */
		__sync_fetch_and_add(&losses.too_deep, 1);
	}
	st->depth = d + 1;
}

/* What pop_entry found, when not an entry's timestamp. */
#define POP_UNPAIRED 0 /* the entry was never seen: the call was running at attach */
#define POP_TOO_DEEP 1 /* nested beyond MAX_DEPTH: already counted as too_deep at its entry */

/*
 * Pops the thread's entry for this function: the top one, or where returns can go missing, one
 * a few frames down (the frames above it ended unseen, counted in exits_unseen).
 */
static __always_inline __u64 pop_entry(__u64 name_ptr, struct fn_key *key)
{
	struct call_stack *st = thread_stack(current_tid(), false);
	__u32 top, k;
	__u64 ts;

	if (!st || st->depth == 0)
		return POP_UNPAIRED;
	top = st->depth - 1;
	if (top >= MAX_DEPTH) {
		st->depth = top;
		return POP_TOO_DEEP;
	}
	if (st->name_ptr[top] != name_ptr) {
		if (!source.returns_may_miss)
			return POP_UNPAIRED;
		for (k = 1; k <= UNWIND_SEARCH; k++) {
			if (k > top)
				return POP_UNPAIRED;
			if (st->name_ptr[(top - k) & (MAX_DEPTH - 1)] == name_ptr)
				break;
		}
		if (k > UNWIND_SEARCH)
			return POP_UNPAIRED;
		__sync_fetch_and_add(&losses.exits_unseen, k);
		top -= k;
	}
	top &= MAX_DEPTH - 1;
	ts = st->ts[top];
	key->code = st->code[top];
	key->name_ptr = st->name_ptr[top];
	key->lineno = st->lineno[top];
	st->depth = top;
	/* A thread's outermost frame returns when the thread ends: free its slot for new threads. */
	if (top == 0) {
		__u32 tid = current_tid();

		if (st->tid == tid)
			st->tid = 0;
		else
			bpf_map_delete_elem(&stacks, &tid);
	}
	return ts;
}

static __always_inline void record_duration(struct fn_stats *s, __u32 id, __u64 start)
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
	__sync_fetch_and_add(&s->timed, 1);
	if (d > s->max_ns)
		s->max_ns = d; /* a racing CPU may lose a max by a hair; counts stay exact */
	hist_add(id, d);
}

static __always_inline struct fn_slot *slot_of(__u64 code)
{
	/* Fibonacci hashing of the code object's address (16-byte aligned). */
	__u32 idx = ((code >> 4) * 0x9E3779B97F4A7C15ULL) >> 52;

	return bpf_map_lookup_elem(&fn_slots, &idx);
}

/* Hands an empty slot to a function just looked up in the table, so later calls take the fast way. */
static __always_inline void claim_slot(struct fn_slot *slot, const struct fn_key *key, const struct fn_entry *e)
{
	if (!slot || slot->code || !key->code)
		return;
	if (__sync_val_compare_and_swap(&slot->code, 0, key->code) != 0)
		return;
	slot->id = e->id;
	slot->matched = e->matched;
	/* Last: a reader trusts the slot only once name_ptr matches. The barrier keeps the compiler
	 * from reordering the stores; x86 keeps them in order for other CPUs. */
	barrier();
	WRITE_ONCE(slot->name_ptr, key->name_ptr);
}

/* Counts one call of the function with this key and returns its statistics block. */
static __always_inline struct fn_stats *count_call(struct pt_regs *ctx, __u32 name_reg, struct fn_key *key,
						    __u32 *id)
{
	struct fn_slot *slot = NULL;
	struct fn_entry *e;
	bool has_code;

	has_code = function_key(ctx, name_reg, key);
	if (has_code) {
		slot = slot_of(key->code);
		if (slot && slot->code == key->code && READ_ONCE(slot->name_ptr) == key->name_ptr) {
			barrier();
			if (!slot->matched)
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
	if (!e->matched)
		return NULL;
	__sync_fetch_and_add(&e->stats.count, 1);
	*id = e->id;
	return &e->stats;
}

SEC("usdt")
int call_entry(struct pt_regs *ctx)
{
	struct fn_key key = {};
	__u32 id;

	if (!armed())
		return 0;
	if (!source.count_on_entry) {
		push_entry(name_arg(ctx, source.name_reg_entry), 0, 0);
		return 0;
	}
	count_call(ctx, source.name_reg_entry, &key, &id);
	if (timed)
		push_entry(key.name_ptr, key.code, key.lineno);
	return 0;
}

SEC("usdt")
int call_return(struct pt_regs *ctx)
{
	struct fn_key key = {};
	struct fn_stats *s;
	struct fn_entry *e;
	__u64 start = 0;
	__u32 id = 0;

	if (!armed())
		return 0;
	if (source.count_on_entry) {
		/* The entry's key is the function's identity; the return's line is not. */
		if (!timed)
			return 0;
		start = pop_entry(name_arg(ctx, source.name_reg_return), &key);
		if (start == POP_UNPAIRED || start == POP_TOO_DEEP) {
			record_duration(NULL, 0, start);
			return 0;
		}
		e = bpf_map_lookup_elem(&functions, &key);
		if (e && e->matched)
			record_duration(&e->stats, e->id, start);
		return 0;
	}
	s = count_call(ctx, source.name_reg_return, &key, &id);
	if (!timed)
		return 0;
	start = pop_entry(key.name_ptr, &key);
	if (s)
		record_duration(s, id, start);
	return 0;
}

/* Attached where it never fires, only to hold the line probe's semaphore up (src/kernel/probes.rs). */
SEC("uprobe")
int tracing_mode(void *ctx)
{
	return 0;
}
