"""Bench workload for pyprobe exceptions: N exceptions raised and caught, each passing two Python
frames (raised in leaf(), caught in work()), among plain calls, as a service swallowing errors
does; the timed region's counts are printed."""
import json
import sys
import time


class Miss(Exception):
    pass


def leaf(i):
    if i % 2:
        raise Miss(i)
    return {}[i]  # KeyError raised in C, passing leaf's frame


def middle(i):
    return leaf(i)


def work(n):
    caught = 0
    for i in range(n):
        try:
            middle(i)
        except (Miss, KeyError):
            caught += 1
    return caught


n = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
work(10)
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter()
c = time.thread_time()
caught = work(n)
dt = time.perf_counter() - t
cpu = time.thread_time() - c
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "exceptions": caught}), flush=True)
sys.stdin.readline()
