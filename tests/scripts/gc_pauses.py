"""A workload with GC pauses of two known sizes (see tests/gc.rs), each timed by the workload
itself with perf_counter: "big" full collections that free a large cyclic heap (tens of
milliseconds) and "small" ones with nothing to free (about a millisecond). Prints "ready",
waits for a line, collects, prints its own timings as JSON, then waits for a second line."""
import gc
import json
import os
import sys
import threading
import time

ORDER = ["big", "small", "small", "big", "small", "big"]
BIG_CYCLES = 100_000


def cyclic_heap(n):
    """`n` two-object cycles (a dict and a list pointing at each other), then dropped."""
    for _ in range(n):
        d = {}
        lst = [d]
        d["l"] = lst


def say(line):
    """One write() per line: pygc shares this stdout when it spawns us, and a line written in
    pieces (as print() may) can have one of pygc's lines land in the middle of it."""
    os.write(1, (line + "\n").encode())


def main():
    gc.disable()
    say("ready")
    sys.stdin.readline()
    pauses = []
    for kind in ORDER:
        if kind == "big":
            cyclic_heap(BIG_CYCLES)
        t0 = time.perf_counter_ns()
        collected = gc.collect()
        t1 = time.perf_counter_ns()
        pauses.append({"kind": kind, "ns": t1 - t0, "collected": collected})
    say(json.dumps({"tid": threading.get_native_id(), "pauses": pauses}))
    sys.stdin.readline()


main()
