"""Functions that sleep a known time; prints its own measured durations as JSON at the end."""
import json
import sys
import time


def sleep_10ms():
    time.sleep(0.010)


def sleep_30ms():
    time.sleep(0.030)


def main():
    print("ready", flush=True)
    sys.stdin.readline()
    own = {"sleep_10ms": [], "sleep_30ms": []}
    for i in range(60):
        fn = sleep_10ms if i % 3 else sleep_30ms
        t = time.perf_counter_ns()
        fn()
        own[fn.__name__].append(time.perf_counter_ns() - t)
    print(json.dumps(own), file=sys.stderr)


main()
