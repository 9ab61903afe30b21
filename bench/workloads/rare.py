"""Bench workload: one function called rarely among many hot ones, the case pycount --filter on
hardware breakpoints is for. N iterations of ten hot functions, and rare() every RARE_EVERY
iterations (default 1000: one call in 10,000); the timed region's counts are printed."""
import json
import os
import sys
import time


def rare():
    pass


def hot0():
    pass


def hot1():
    pass


def hot2():
    pass


def hot3():
    pass


def hot4():
    pass


def hot5():
    pass


def hot6():
    pass


def hot7():
    pass


def hot8():
    pass


def hot9():
    pass


def work(n, every):
    for i in range(n):
        hot0()
        hot1()
        hot2()
        hot3()
        hot4()
        hot5()
        hot6()
        hot7()
        hot8()
        hot9()
        if i % every == 0:
            rare()


n = int(sys.argv[1]) if len(sys.argv) > 1 else 600_000
every = int(os.environ.get("RARE_EVERY", "1000"))
# Every function once before the timed region, as in a live service: each has its trampoline
# stub when pycount comes, so breakpoints are set at attach.
work(1, 1)
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter()
c = time.thread_time()
work(n, every)
dt = time.perf_counter() - t
cpu = time.thread_time() - c
rare_calls = (n + every - 1) // every
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "calls": 10 * n + rare_calls + 1, "rare_calls": rare_calls}),
      flush=True)
sys.stdin.readline()
