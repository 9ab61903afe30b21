/* Helpers shared by every pyprobe BPF program: includes, bucketing, and loss accounting. */
#ifndef PYPROBE_COMMON_BPF_H
#define PYPROBE_COMMON_BPF_H

#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>
#include "pyprobe.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* One access the compiler may neither split, merge nor move across another such access. */
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

/* Only the target's threads may count: a probe is per file, the pid filter is per attach. */
const volatile __u32 target_tgid = 0;

/* Every record that could not be kept is counted here and printed by userspace. */
struct loss_counters losses = {};

static __always_inline bool from_target(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

/* floor(log2(v)) for v > 0, branch-light so the verifier sees a short straight path. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

/* Log-linear bucket: exact below 16, then 16 buckets per power of two (<= 6.25% wide). */
static __always_inline __u32 hist_bucket(__u64 v)
{
	__u32 e, sub;

	if (v < (1 << HIST_SUB_BITS))
		return v;
	e = log2_u64(v);
	sub = (v >> (e - HIST_SUB_BITS)) & ((1 << HIST_SUB_BITS) - 1);
	return (((e - HIST_SUB_BITS + 1) << HIST_SUB_BITS) + sub) & (HIST_BUCKETS - 1);
}

#endif
