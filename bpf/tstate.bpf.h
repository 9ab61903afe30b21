// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A thread's Python state from the kernel, shared by the programs that walk Python frames
 * without a probe's arguments (sample.bpf.c, exceptions.bpf.c): the thread's PyThreadState
 * found by its FS base and cached per thread, and one frame's bytes read at once. The program
 * defines `layout` (struct stack_layout) before it includes this. */
#ifndef PYPROBE_TSTATE_BPF_H
#define PYPROBE_TSTATE_BPF_H

/*
 * The two kernel fields read here, relocated by libbpf against the running kernel's BTF
 * (CO-RE), so no vmlinux.h is needed.
 */
struct thread_struct {
	unsigned long fsbase;
} __attribute__((preserve_access_index));

struct task_struct {
	struct thread_struct thread;
} __attribute__((preserve_access_index));

/* A thread's state as last found, and when a thread without one was last looked for. */
struct tstate_entry {
	__u64 tstate;
	__u64 looked_ns;
};

/* How long a thread found without a Python thread state is not looked for again. */
#define NO_TSTATE_RETRY_NS 10000000ULL

/* Keyed by the kernel's thread id: a new thread (whose FS base may be a dead one's) misses. */
BY_THREAD(tstates, BPF_MAP_TYPE_LRU_HASH, 0, 4096, struct tstate_entry);

/* The bytes of one frame, read at once; layout.frame_size is at most this. */
#define FRAME_BUF 128

static __always_inline __u64 field_u64(const __u8 *buf, __u32 off)
{
	__u64 v = 0;

	if (off <= FRAME_BUF - sizeof(v))
		__builtin_memcpy(&v, buf + off, sizeof(v));
	return v;
}

/* Where a walk of the thread lists is (bpf_loop's context: the verifier checks a step once). */
struct tstate_walk {
	__u64 fsbase;
	__u64 interp;
	__u64 ts;
	__u64 found;
};

static long tstate_step(__u32 i, struct tstate_walk *w)
{
	bool ok = true;

	if (!w->ts) {
		w->interp = read_user_u64(w->interp + layout.interp_next, &ok);
		if (!w->interp || !ok)
			return 1;
		w->ts = read_user_u64(w->interp + layout.interp_threads_head, &ok);
		return ok ? 0 : 1;
	}
	if (read_user_u64(w->ts + layout.tstate_thread_id, &ok) == w->fsbase && ok) {
		w->found = w->ts;
		return 1;
	}
	w->ts = read_user_u64(w->ts + layout.tstate_next, &ok);
	return ok ? 0 : 1;
}

/*
 * The thread's PyThreadState: the thread state whose thread_id (pthread_self(), the FS base on
 * x86-64 glibc) is this task's FS base, in every version 3.8-3.15 and in any pid namespace.
 * Found by walking the interpreters' thread lists once per thread, then cached by thread id
 * and checked with one read at each use. (The thread-local _Py_tss_tstate of 3.12+ would save
 * that read but is NULL whenever the thread has released the GIL, as in hashlib or zlib, whose
 * samples still belong to the Python stack that called them.)
 */
static __always_inline __u64 find_tstate(__u32 tid, __u64 fsbase, __u64 now)
{
	struct tstate_entry e = { .looked_ns = now }, *cached;
	struct tstate_walk w = { .fsbase = fsbase };
	bool ok = true;
	__u64 ts;

	cached = bpf_map_lookup_elem(&tstates, &tid);
	if (cached) {
		ts = cached->tstate;
		if (ts) {
			if (read_user_u64(ts + layout.tstate_thread_id, &ok) == fsbase && ok)
				return ts;
		} else if (now - cached->looked_ns < NO_TSTATE_RETRY_NS) {
			return 0;
		}
	}
	ok = true;
	w.interp = read_user_u64(layout.runtime_addr + layout.interpreters_head, &ok);
	if (w.interp && ok) {
		w.ts = read_user_u64(w.interp + layout.interp_threads_head, &ok);
		if (ok)
			bpf_loop(MAX_THREAD_WALK, tstate_step, &w, 0);
	}
	e.tstate = w.found;
	bpf_map_update_elem(&tstates, &tid, &e, BPF_ANY);
	return e.tstate;
}

#endif
