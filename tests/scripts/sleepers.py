"""Functions that sleep a known time; prints its own measured durations as JSON at the end:
each call timed inside the function (a lower bound of the call) and around it (an upper bound)."""
import json
import sys
import time

inside = {"sleep_10ms": [], "sleep_30ms": []}


def sleep_10ms():
    t = time.perf_counter_ns()
    time.sleep(0.010)
    inside["sleep_10ms"].append(time.perf_counter_ns() - t)


def sleep_30ms():
    t = time.perf_counter_ns()
    time.sleep(0.030)
    inside["sleep_30ms"].append(time.perf_counter_ns() - t)


def main():
    print("ready", flush=True)
    sys.stdin.readline()
    around = {"sleep_10ms": [], "sleep_30ms": []}
    for i in range(60):
        fn = sleep_10ms if i % 3 else sleep_30ms
        t = time.perf_counter_ns()
        fn()
        around[fn.__name__].append(time.perf_counter_ns() - t)
    print(json.dumps({"inside": inside, "around": around}), file=sys.stderr)


main()
