// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Empty programs for scripts/bench: the cost of the probe mechanism itself, the floor. */
#include "common.bpf.h"

SEC("usdt")
int empty_usdt(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int empty_uprobe(void *ctx)
{
	return 0;
}
