"""A parent that spins a known time and calls a child that sleeps a known time, and a tiny
function called often: pycount --latency's own time is the parent's spin, its total the spin
plus the child's. Prints its own timing of the parent's spins as JSON on stderr at the end."""
import json
import sys
import time


def tiny():
    return 1


def child():
    time.sleep(0.03)


def parent():
    t = time.perf_counter_ns()
    end = t + 20_000_000
    while time.perf_counter_ns() < end:
        pass
    spun = time.perf_counter_ns() - t
    child()
    child()
    return spun


def main():
    print("ready", flush=True)
    sys.stdin.readline()
    spun = 0
    for _ in range(5):
        spun += parent()
    for _ in range(1000):
        tiny()
    print(json.dumps({"spun_ns": spun}), file=sys.stderr, flush=True)


main()
