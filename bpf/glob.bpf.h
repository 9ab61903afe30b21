/* In-kernel glob matching ('*' and '?') for --file and --event, decided once per name. */
#ifndef PYPROBE_GLOB_BPF_H
#define PYPROBE_GLOB_BPF_H

#include "common.bpf.h"

const volatile struct glob_pattern globs[MAX_GLOBS] = {};
const volatile __u32 nr_globs = 0;

/*
 * The set of pattern positions reached so far, per glob: bit j means the subject's bytes seen
 * match the pattern's first j positions.
 */
struct glob_run {
	const char *subject; /* a buffer of PATH_SCRATCH bytes */
	__u64 reached[MAX_GLOBS];
};

/* A '*' matches the empty run too: reaching it reaches the position after it (runs of '*' are
 * one position, so one step is enough). */
static __always_inline __u64 glob_close(__u64 reached, __u64 star)
{
	return reached | ((reached & star) << 1);
}

/*
 * One subject byte for every glob at once: a position reached moves on where its byte or '?'
 * matches, and stays where it is a '*'. Branch-free on the pattern: the verifier's view of the
 * state is the same after every step, so it walks this body once (bpf_loop, kernel 5.17+),
 * where a pattern-driven backtracking loop made it walk one path per pattern position and
 * give up ("the sequence of 8193 jumps is too complex").
 */
static long glob_step(__u64 i, void *ctx)
{
	struct glob_run *r = ctx;
	__u8 c = r->subject[i & (PATH_SCRATCH - 1)];

	for (int k = 0; k < MAX_GLOBS; k++) {
		const volatile struct glob_pattern *g = &globs[k];
		__u64 s = r->reached[k];

		s = ((s & (g->byte[c] | g->any)) << 1) | (s & g->star);
		r->reached[k] = glob_close(s, g->star);
	}
	return 0;
}

/* Whether a NUL-free subject of slen bytes (in a PATH_SCRATCH buffer) matches any glob. */
static __noinline bool glob_any(const char *subject, __u32 slen)
{
	struct glob_run r = { .subject = subject };
	bool any = false;

	if (!nr_globs)
		return true;
	if (slen > PATH_SCRATCH - 1)
		slen = PATH_SCRATCH - 1;
	for (int k = 0; k < MAX_GLOBS; k++)
		r.reached[k] = glob_close(1, globs[k].star);
	bpf_loop(slen, glob_step, &r, 0);
	/* An unused slot's accept is 0: it never matches. */
	for (int k = 0; k < MAX_GLOBS; k++)
		any |= (r.reached[k] & globs[k].accept) != 0;
	return any;
}

#endif
