// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pyprobe audit's kernel side: sys.audit events filtered by name, security-relevant ones with
 * their leading arguments decoded from the args tuple, streamed through a ring buffer. */
#include "glob.bpf.h"

/* Object layouts of this CPython version (src/versions/table.rs); known == 0: names only. */
const volatile struct object_layout objects = {};
const volatile struct audit_decoder decoders[MAX_DECODED_EVENTS] = {};
const volatile __u32 nr_decoders = 0;

/* Type flags CPython sets on these types and their subclasses (stable since 3.0). */
#define TPFLAGS_LONG (1UL << 24)
#define TPFLAGS_LIST (1UL << 25)
#define TPFLAGS_TUPLE (1UL << 26)
#define TPFLAGS_BYTES (1UL << 27)
#define TPFLAGS_UNICODE (1UL << 28)
/* PyASCIIObject.state bits (3.3+): compact, then ascii. */
#define STATE_COMPACT 0x20
#define STATE_ASCII 0x40

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} audit_events SEC(".maps");

struct audit_scratch {
	char name[PATH_SCRATCH];
};

PER_CPU_SLOT(audit_scratch_space, struct audit_scratch);


/* Copies the first bytes of a str or bytes payload, flagging what does not fit. */
static __always_inline void copy_text(struct audit_value *v, __u64 data, __u64 len, bool *ok)
{
	__u32 n = len < ARG_LEN - 1 ? len : ARG_LEN - 1;

	v->truncated = len > ARG_LEN - 1;
	if (n && bpf_probe_read_user(v->text, n & (ARG_LEN - 1), (void *)data))
		*ok = false;
}

/* Decodes one Python object: str, bytes, int, tuple/list (length), or just its type's name. */
static __noinline void decode_value(struct audit_value *v, __u64 obj)
{
	bool ok = true;
	__u64 type, flags, len, tag;
	__u8 state = 0;
	__u32 digits[2] = {};
	__s64 size;

	__builtin_memset(v, 0, sizeof(*v));
	v->kind = ARG_UNREADABLE;
	if (!obj)
		return;
	type = read_user_u64(obj + 8, &ok);
	if (!ok || !type)
		return;
	bpf_probe_read_user_str(v->type_name, TYPE_NAME_LEN, (void *)read_user_u64(type + objects.type_name, &ok));
	flags = read_user_u64(type + objects.type_flags, &ok);
	if (!ok)
		return;
	if (flags & TPFLAGS_UNICODE) {
		bpf_probe_read_user(&state, 1, (void *)(obj + objects.str_state));
		len = read_user_u64(obj + 16, &ok);
		if (!ok)
			return;
		v->num = len;
		if ((state & STATE_COMPACT) && (state & STATE_ASCII)) {
			copy_text(v, obj + objects.str_ascii_data, len, &ok);
			v->kind = ARG_STR;
		} else {
			/* Any other str is shown only if CPython already cached its UTF-8. */
			__u64 utf8 = (state & STATE_COMPACT) ? read_user_u64(obj + objects.str_utf8, &ok) : 0;

			if (ok && utf8) {
				len = read_user_u64(obj + objects.str_utf8_len, &ok);
				v->num = len; /* bytes of UTF-8, which is what is shown, not characters */
				copy_text(v, utf8, len, &ok);
				v->kind = ARG_STR;
			} else {
				v->kind = ARG_STR_OTHER;
			}
		}
	} else if (flags & TPFLAGS_BYTES) {
		len = read_user_u64(obj + 16, &ok);
		v->num = len;
		if (ok)
			copy_text(v, obj + objects.bytes_data, len, &ok);
		v->kind = ARG_BYTES;
	} else if (flags & TPFLAGS_LONG) {
		bool neg;
		__u64 nd;

		tag = read_user_u64(obj + 16, &ok);
		if (objects.long_tagged) {
			nd = tag >> 3;
			neg = (tag & 3) == 2;
		} else {
			size = (__s64)tag;
			neg = size < 0;
			nd = neg ? -size : size;
		}
		if (nd > 2) {
			v->kind = ARG_INT_BIG;
			return;
		}
		if (nd && bpf_probe_read_user(digits, nd * 4 > 8 ? 8 : nd * 4, (void *)(obj + objects.long_digits)))
			ok = false;
		/* 30-bit digits, least significant first; two hold any port, fd or flag word. */
		v->num = (__s64)((__u64)(digits[0] & 0x3fffffff) | ((__u64)(digits[1] & 0x3fffffff) << 30));
		if (neg)
			v->num = -v->num;
		v->kind = ARG_INT;
	} else if (flags & (TPFLAGS_TUPLE | TPFLAGS_LIST)) {
		v->num = read_user_u64(obj + 16, &ok);
		v->kind = ARG_SEQ;
	} else {
		v->kind = ARG_OTHER;
	}
	if (!ok)
		v->kind = ARG_UNREADABLE;
}

/* The decoder whose name is this event's, or -1 (event names are compared NUL included). */
static __always_inline int find_decoder(const char *name)
{
	for (int k = 0; k < MAX_DECODED_EVENTS; k++) {
		bool same = true;

		if (k >= nr_decoders)
			break;
		for (int j = 0; j < EVENT_LEN; j++) {
			if (name[j] != decoders[k].name[j]) {
				same = false;
				break;
			}
			if (!name[j])
				break;
		}
		if (same)
			return k;
	}
	return -1;
}

/* The address of a tuple's or list's item array. */
static __always_inline __u64 seq_items(__u64 obj, bool *ok)
{
	__u64 type = read_user_u64(obj + 8, ok);
	__u64 flags = read_user_u64(type + objects.type_flags, ok);

	if (flags & TPFLAGS_TUPLE)
		return obj + objects.tuple_items;
	return read_user_u64(obj + objects.list_items, ok);
}

static __noinline void decode_args(struct audit_event *ev, __u64 args, int k)
{
	bool ok = true;
	__u32 nargs = decoders[k & (MAX_DECODED_EVENTS - 1)].nargs;
	__s32 seq = decoders[k & (MAX_DECODED_EVENTS - 1)].seq_arg;
	__u64 items, obj, seq_obj = 0, n;

	for (int i = 0; i < AUDIT_ARGS; i++) {
		if (i >= nargs || i >= ev->nargs)
			break;
		obj = read_user_u64(args + objects.tuple_items + 8 * i, &ok);
		decode_value(&ev->args[i], ok ? obj : 0);
		if (i == seq)
			seq_obj = obj;
	}
	ev->seq_arg = seq;
	if (seq < 0 || seq >= AUDIT_ARGS || !seq_obj || ev->args[seq & (AUDIT_ARGS - 1)].kind != ARG_SEQ)
		return;
	n = ev->args[seq & (AUDIT_ARGS - 1)].num;
	items = seq_items(seq_obj, &ok);
	if (!ok)
		return;
	for (int j = 0; j < AUDIT_ITEMS; j++) {
		if (j >= n)
			break;
		obj = read_user_u64(items + 8 * j, &ok);
		decode_value(&ev->items[j], ok ? obj : 0);
		ev->nitems = j + 1;
	}
}

SEC("usdt")
int BPF_USDT(on_audit, const char *event, void *args)
{
	struct audit_scratch *s;
	struct audit_event *ev;
	__u32 zero = 0;
	bool ok = true;
	long n;
	int k;

	if (!armed())
		return 0;
	s = bpf_map_lookup_elem(&audit_scratch_space, &zero);
	if (!s)
		return 0;
	n = bpf_probe_read_user_str(s->name, PATH_SCRATCH, event);
	if (n <= 0) {
		__sync_fetch_and_add(&losses.read_errors, 1);
		return 0;
	}
	if (!glob_any(s->name, n - 1))
		return 0;
	ev = bpf_ringbuf_reserve(&audit_events, sizeof(*ev), 0);
	if (!ev) {
		__sync_fetch_and_add(&losses.events_lost, 1);
		return 0;
	}
	/* Only the header: decode_value clears each argument it fills, and userspace reads no more. */
	__builtin_memset(ev, 0, __builtin_offsetof(struct audit_event, args));
	ev->ts = bpf_ktime_get_ns();
	ev->pid = current_pid();
	ev->tid = current_tid();
	ev->seq_arg = -1;
	ev->nitems = 0;
	ev->name_truncated = n > EVENT_LEN;
	bpf_probe_read_user_str(ev->name, EVENT_LEN, event);
	ev->nargs = args ? read_user_u64((__u64)args + 16, &ok) : 0;
	k = objects.known && args && ok ? find_decoder(ev->name) : -1;
	ev->decoded = k >= 0;
	if (k >= 0)
		decode_args(ev, (__u64)args, k);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}
