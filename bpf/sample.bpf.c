// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pyprobe record and top: the Python stack of the thread on CPU, walked in the kernel at each
 * CPU-clock sample and counted per thread and stack; each new stack is sent once to be named. */
#include "common.bpf.h"
#include <bpf/bpf_tracing.h>

/* The process sampled: the perf events watch every CPU, so the program picks its threads. */
const volatile __u32 target_tgid = 0;
/* --tid: only this thread (0: all). */
const volatile __u32 only_tid = 0;
const volatile struct stack_layout layout = {};

#include "tstate.bpf.h"

/* record --async (3.11+): where a coroutine's frame is inside it (gi_iframe), so the outermost
 * frame owned by a generator gives the coroutine running; 0: off. */
const volatile __u32 coro_iframe = 0;

/* _PyInterpreterFrame.owner of a generator's or coroutine's frame (3.11-3.15). */
#define FRAME_OWNED_BY_GENERATOR 1

/* Every sample of the target taken while armed (the progress line). */
__u64 samples = 0;

/* Samples per (thread, stack); stack 0 is a thread with no Python frame. Sized by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sample_key);
	__type(value, __u64);
} counts SEC(".maps");

/* Stacks already sent to userspace; once full, new stacks are sent at every sample and
 * userspace recognises them (a plain hash: an LRU's update costs more at every new stack). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} seen SEC(".maps");

/* --async: each coroutine seen running outermost, and its generation (from coro_gen). Userspace
 * reads the tasks when new ones appear, and deletes a coroutine whose task it saw finish, so
 * that a new one at its address is told apart. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u32);
} coros SEC(".maps");

/* The last generation given to a coroutine (userspace reads the tasks when it moves). */
__u32 coro_gen = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} new_stacks SEC(".maps");

/* A stack is too big for the BPF stack. */
PER_CPU_SLOT(scratch, struct stack_record);

static __always_inline __u64 mix(__u64 h, __u64 v)
{
	h ^= v;
	h *= 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

/* Where a walk of the frame chain is (bpf_loop's context). */
struct frame_walk {
	__u64 frame;
	__u64 hash;
	/* --async: the outermost generator-owned frame so far, and the depth up to it. */
	__u64 coro_frame;
	__u32 coro_depth;
	__u32 depth;
	__u8 truncated;
	__u8 failed;
};

/* One frame: kept (a Python function's), or skipped (a shim); 1 ends the walk. */
static long frame_step(__u32 i, struct frame_walk *w)
{
	__u32 zero = 0, size = layout.frame_size, d;
	struct stack_record *r = bpf_map_lookup_elem(&scratch, &zero);
	__u8 buf[FRAME_BUF];
	__u64 code, instr, at = w->frame;

	if (!r || !w->frame)
		return 1;
	if (size == 0 || size > FRAME_BUF ||
	    bpf_probe_read_user(buf, size & (FRAME_BUF - 1) ?: FRAME_BUF, (void *)w->frame)) {
		w->failed = 1;
		return 1;
	}
	code = field_u64(buf, layout.frame_code) & ~layout.code_tag_mask;
	instr = field_u64(buf, layout.frame_instr);
	w->frame = field_u64(buf, layout.frame_previous);
	if (layout.frame_owner && layout.frame_owner < FRAME_BUF &&
	    buf[layout.frame_owner & (FRAME_BUF - 1)] >= layout.owner_shim)
		return 0;
	if (w->depth >= MAX_STACK_DEPTH) {
		w->truncated = 1;
		return 1;
	}
	d = w->depth & (MAX_STACK_DEPTH - 1);
	r->frames[d].code = code;
	r->frames[d].instr = instr;
	w->hash = mix(mix(w->hash, code), instr);
	w->depth++;
	if (coro_iframe && layout.frame_owner && layout.frame_owner < FRAME_BUF &&
	    buf[layout.frame_owner & (FRAME_BUF - 1)] == FRAME_OWNED_BY_GENERATOR) {
		w->coro_frame = at;
		w->coro_depth = w->depth;
	}
	return 0;
}

/*
 * Walks the thread's frames from the innermost into the per-CPU record; returns the stack's
 * id (a hash of its frames; 0 for no frame). Shim frames (the C-stack and interpreter entry
 * frames of 3.12+) are no Python functions: skipped. src/sample/idle.rs computes the same id.
 * With --async, *coro is set to the outermost coroutine on the stack (0: none).
 */
static __always_inline __u64 walk_stack(struct stack_record *r, __u64 tstate, __u64 *coro)
{
	struct frame_walk w = { .hash = 0x5350 };
	bool ok = true;
	__u64 h;

	w.frame = read_user_u64(tstate + layout.tstate_frame, &ok);
	if (layout.cframe_frame >= 0 && w.frame && ok)
		w.frame = read_user_u64(w.frame + layout.cframe_frame, &ok);
	if (ok)
		bpf_loop(2 * MAX_STACK_DEPTH, frame_step, &w, 0);
	if (!ok || w.failed)
		__sync_fetch_and_add(&losses.stack_read_errors, 1);
	if (w.truncated)
		__sync_fetch_and_add(&losses.stacks_truncated, 1);
	r->depth = w.depth;
	r->truncated = w.truncated;
	r->coro_depth = w.coro_depth;
	if (w.coro_frame > coro_iframe)
		*coro = w.coro_frame - coro_iframe;
	if (!w.depth)
		return 0;
	h = mix(w.hash, w.depth | (__u64)w.truncated << 32);
	return h ? h : 1;
}

/* Sends a stack userspace has not named yet; if the ring is full it is sent at its next sample.
 * No wake-up: pyprobe drains the ring every 20 ms, so a sample never wakes it. */
static __always_inline void announce(struct stack_record *r)
{
	__u8 one = 1;
	long err = bpf_map_update_elem(&seen, &r->id, &one, BPF_NOEXIST);

	if (err == -17 /* EEXIST: sent before */)
		return;
	if (bpf_ringbuf_output(&new_stacks, r, sizeof(*r), BPF_RB_NO_WAKEUP)) {
		if (!err)
			bpf_map_delete_elem(&seen, &r->id);
		__sync_fetch_and_add(&losses.events_lost, 1);
	}
}

/* A coroutine's generation: its own if seen before, else a new one. */
static __always_inline __u32 generation(__u64 coro)
{
	__u32 *g = bpf_map_lookup_elem(&coros, &coro), gen;

	if (g)
		return *g;
	gen = __sync_fetch_and_add(&coro_gen, 1) + 1;
	if (bpf_map_update_elem(&coros, &coro, &gen, BPF_NOEXIST)) {
		g = bpf_map_lookup_elem(&coros, &coro);
		if (g)
			return *g;
	}
	return gen;
}

SEC("perf_event")
int sample(void *ctx)
{
	struct task_struct *task;
	struct stack_record *r;
	struct sample_key key = {};
	__u64 pid_tgid = bpf_get_current_pid_tgid(), tstate, now;
	__u32 zero = 0;

	if (pid_tgid >> 32 != target_tgid || !armed())
		return 0;
	key.tid = (__u32)pid_tgid;
	if (only_tid && key.tid != only_tid)
		return 0;
	r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	__sync_fetch_and_add(&samples, 1);
	now = bpf_ktime_get_ns();
	task = bpf_get_current_task_btf();
	tstate = find_tstate(key.tid, task->thread.fsbase, now);
	key.stack_id = tstate ? walk_stack(r, tstate, &key.coro) : 0;
	if (key.coro)
		key.coro_gen = generation(key.coro);
	map_increment(&counts, &key, &losses.samples_full);
	if (key.stack_id) {
		r->id = key.stack_id;
		announce(r);
	}
	return 0;
}
