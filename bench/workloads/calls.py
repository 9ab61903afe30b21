"""Bench workload: a tight loop of three trivial functions, 3*N calls in the timed region."""
import json
import sys
import time


def func1():
    pass


def func2():
    pass


def func3():
    pass


def hot(n):
    for _ in range(n):
        func1()
        func2()
        func3()


n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter()
c = time.thread_time()
hot(n)
dt = time.perf_counter() - t
cpu = time.thread_time() - c
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "calls": 3 * n + 1}), flush=True)
sys.stdin.readline()
