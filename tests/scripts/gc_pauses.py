"""A workload with GC pauses of two known kinds (see tests/gc.rs), each timed by the workload
itself with perf_counter: "big" full collections that free a large cyclic heap, at least
LONG_NS long by the workload's own clock (argv[1], default 20 ms), and "small" ones with nothing
to free (about a millisecond). A machine's speed sets how big a heap that takes: each big
collection grows the heap (from argv[2] cycles, default 100k) until one takes LONG_NS, and the
shorter ones it made on the way are logged as "sizing". Prints "ready", waits for a line,
collects, prints its own timings as JSON, then waits for a second line."""
import gc
import json
import sys
import threading
import time

from harness import say

ORDER = ["big", "small", "small", "big", "small", "big"]
LONG_NS = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000_000
START_CYCLES = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
# About 250 bytes a cycle: a heap this big would mean a clock that says nothing.
MAX_CYCLES = 4_000_000


def cyclic_heap(n):
    """`n` two-object cycles (a dict and a list pointing at each other), then dropped."""
    for _ in range(n):
        d = {}
        lst = [d]
        d["l"] = lst


def main():
    gc.disable()
    say("ready")
    sys.stdin.readline()
    pauses = []
    cycles = START_CYCLES

    def collect(kind):
        t0 = time.perf_counter_ns()
        collected = gc.collect()
        ns = time.perf_counter_ns() - t0
        pauses.append({"kind": kind, "ns": ns, "collected": collected})
        return ns

    for kind in ORDER:
        if kind == "small":
            collect(kind)
            continue
        while True:
            cyclic_heap(cycles)
            ns = collect(kind)
            if ns >= LONG_NS:
                break
            pauses[-1]["kind"] = "sizing"
            # A collection's time grows with the heap: aim a quarter past the goal.
            cycles = max(cycles * 3 // 2, cycles * LONG_NS * 5 // (4 * max(ns, 1)))
            if cycles > MAX_CYCLES:
                sys.exit(f"{MAX_CYCLES} cycles collected in {ns} ns, under {LONG_NS}")
    say(json.dumps({"tid": threading.get_native_id(), "pauses": pauses}))
    sys.stdin.readline()


main()
