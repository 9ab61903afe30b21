/* In-kernel glob matching ('*' and '?') for --file and --event, decided once per name. */
#ifndef PYPROBE_GLOB_BPF_H
#define PYPROBE_GLOB_BPF_H

#include "common.bpf.h"

const volatile struct glob_pattern globs[MAX_GLOBS] = {};
const volatile __u32 nr_globs = 0;

struct glob_state {
	const char *subject; /* a buffer of PATH_SCRATCH bytes */
	__u32 slen;
	__u32 k;
	__s32 star;
	__u32 p;
	__u32 s;
	__u32 mark;
	int result;
};

/* One step of the classic linear-backtracking wildcard match (one remembered '*'). */
static long glob_step(__u64 i, void *ctx)
{
	struct glob_state *g = ctx;
	const volatile struct glob_pattern *pat = &globs[g->k & (MAX_GLOBS - 1)];
	__u32 p = g->p, s = g->s, plen = pat->len;
	char pc = 0, sc;

	if (plen > GLOB_LEN - 1)
		plen = GLOB_LEN - 1;
	if (p < plen)
		pc = pat->text[p & (GLOB_LEN - 1)];
	if (s >= g->slen) {
		/* Subject used up: only trailing stars may remain. */
		if (p < plen && pc == '*') {
			g->p = p + 1;
			return 0;
		}
		g->result = p >= plen;
		return 1;
	}
	sc = g->subject[s & (PATH_SCRATCH - 1)];
	if (p < plen && pc == '*') {
		g->star = p;
		g->mark = s;
		g->p = p + 1;
		return 0;
	}
	if (p < plen && (pc == '?' || pc == sc)) {
		g->p = p + 1;
		g->s = s + 1;
		return 0;
	}
	if (g->star >= 0) {
		g->p = g->star + 1;
		g->mark++;
		g->s = g->mark;
		return 0;
	}
	g->result = 0;
	return 1;
}

/* Whether a NUL-free subject of slen bytes (in a PATH_SCRATCH buffer) matches any glob. */
static __noinline bool glob_any(const char *subject, __u32 slen)
{
	if (!nr_globs)
		return true;
	if (slen > PATH_SCRATCH - 1)
		slen = PATH_SCRATCH - 1;
	for (int k = 0; k < MAX_GLOBS; k++) {
		struct glob_state g = {
			.subject = subject, .slen = slen, .k = k, .star = -1, .result = -1,
		};

		if (k >= nr_globs)
			break;
		/*
		 * Each step advances the subject or the pattern, or restarts after the star; bpf_loop
		 * (kernel 5.17+) keeps the verifier's work constant however many steps that takes.
		 */
		bpf_loop(PATH_SCRATCH * (GLOB_LEN + 1) + GLOB_LEN, glob_step, &g, 0);
		if (g.result == 1)
			return true;
	}
	return false;
}

#endif
