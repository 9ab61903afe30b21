// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pyprobe exceptions: a uprobe on PyTraceBack_Here (once per Python frame an exception passes)
 * follows each exception per thread and counts it by type, raise site, end and frames passed. */
#include "common.bpf.h"
#include <bpf/bpf_tracing.h>

const volatile struct stack_layout layout = {};
const volatile struct exc_layout exc = {};
/* Stream each finished exception into the ring (the streaming mode). */
const volatile __u8 stream = 0;

#include "tstate.bpf.h"

/* Every PyTraceBack_Here call seen while armed: the frames all exceptions passed. */
__u64 calls = 0;

/* The exception each thread is propagating; read by userspace at the end (the last ones). */
BY_THREAD(flights, BPF_MAP_TYPE_LRU_HASH, 0, 4096, struct exc_flight);

/* Finished exceptions per key. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct exc_key);
	__type(value, __u64);
} exc_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} exc_events SEC(".maps");

/* Frames looked at above the current one for a Python caller (shims skipped). */
#define TOP_WALK 8

/* Reads one interpreter frame (or <= 3.10 frame object); false when unreadable. */
static __always_inline bool read_frame(__u8 *buf, __u64 frame)
{
	__u32 size = layout.frame_size;

	if (!frame || size == 0 || size > FRAME_BUF)
		return false;
	return !bpf_probe_read_user(buf, size & (FRAME_BUF - 1) ?: FRAME_BUF, (void *)frame);
}

struct top_walk {
	__u64 frame;
	__u8 python_above;
};

/* One frame above: a Python function's ends the walk (not the top); a shim is skipped. */
static long top_step(__u32 i, struct top_walk *w)
{
	__u8 buf[FRAME_BUF];

	if (!w->frame || !read_frame(buf, w->frame))
		return 1;
	if (layout.frame_owner && layout.frame_owner < FRAME_BUF &&
	    buf[layout.frame_owner & (FRAME_BUF - 1)] >= layout.owner_shim) {
		w->frame = field_u64(buf, layout.frame_previous);
		return 0;
	}
	w->python_above = 1;
	return 1;
}

static __always_inline void finish(struct exc_flight *f)
{
	struct exc_event *ev;

	if (!f->key.frames)
		return;
	map_increment(&exc_counts, &f->key, &losses.functions_full);
	if (!stream)
		return;
	ev = bpf_ringbuf_reserve(&exc_events, sizeof(*ev), 0);
	if (!ev) {
		__sync_fetch_and_add(&losses.events_lost, 1);
		return;
	}
	ev->key = f->key;
	ev->start_ns = f->start_ns;
	ev->tid = current_tid();
	ev->pad = 0;
	bpf_ringbuf_submit(ev, 0);
}

SEC("uprobe")
int BPF_KPROBE(traceback_here, void *frame_object)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct exc_flight fresh = {}, *f;
	struct top_walk w = {};
	__u8 buf[FRAME_BUF];
	__u64 now = bpf_ktime_get_ns(), frame = (__u64)frame_object, tstate, e, type, tb, ident;
	__u64 code, instr;
	__u32 tid = current_tid();
	bool ok = true;

	if (!armed())
		return 0;
	__sync_fetch_and_add(&calls, 1);
	tstate = find_tstate(tid, task->thread.fsbase, now);
	if (!tstate) {
		__sync_fetch_and_add(&losses.read_errors, 1);
		return 0;
	}
	e = read_user_u64(tstate + exc.tstate_exc, &ok);
	if (exc.exc_traceback) {
		ident = e;
		type = e ? read_user_u64(e + 8, &ok) : 0;
		tb = e ? read_user_u64(e + exc.exc_traceback, &ok) : 0;
	} else {
		/* The value may be unnormalized (a C raise's argument): still one object throughout. */
		type = e;
		ident = read_user_u64(tstate + exc.tstate_exc + 8, &ok) ^ e;
		tb = read_user_u64(tstate + exc.tstate_exc + 16, &ok);
	}
	if (exc.frame_object_frame)
		frame = read_user_u64(frame + exc.frame_object_frame, &ok);
	if (!ok || !type || !read_frame(buf, frame)) {
		__sync_fetch_and_add(&losses.read_errors, 1);
		return 0;
	}
	code = field_u64(buf, layout.frame_code) & ~layout.code_tag_mask;
	instr = field_u64(buf, layout.frame_instr);
	w.frame = field_u64(buf, layout.frame_previous);
	bpf_loop(TOP_WALK, top_step, &w, 0);

	f = bpf_map_lookup_elem(&flights, &tid);
	/* The same exception one frame further out: its traceback's newest entry is the frame
	 * the previous call made it for. */
	if (f && f->exc == ident && tb &&
	    read_user_u64(tb + exc.tb_frame, &ok) == f->last_frame && ok) {
		f->key.frames++;
		f->key.end_code = code;
		f->key.reached_top |= !w.python_above;
		f->last_frame = (__u64)frame_object;
		return 0;
	}
	if (f)
		finish(f);
	fresh.exc = ident;
	fresh.last_frame = (__u64)frame_object;
	fresh.start_ns = now;
	fresh.key.type = type;
	fresh.key.raise_code = code;
	fresh.key.raise_instr = instr;
	fresh.key.end_code = code;
	fresh.key.frames = 1;
	fresh.key.reached_top = !w.python_above;
	if (bpf_map_update_elem(&flights, &tid, &fresh, BPF_ANY))
		__sync_fetch_and_add(&losses.threads_full, 1);
	return 0;
}
