"""A workload with a known call flow (see tests/flow.rs); waits for a line on stdin first."""
import json
import sys
import threading
import time


def leaf():
    return 1


def middle():
    leaf()
    leaf()


def gen():
    yield 1
    yield 2


def raiser():
    raise ValueError("x")


def catcher():
    try:
        raiser()
    except ValueError:
        pass


def rec(n):
    return 0 if n == 0 else rec(n - 1)


def top():
    middle()
    list(gen())
    catcher()
    rec(3)


def worker():
    top()


def slow(own):
    t0 = time.perf_counter_ns()
    time.sleep(0.2)
    own["inside"] = time.perf_counter_ns() - t0


def slow_path(own):
    leaf()
    t0 = time.perf_counter_ns()
    slow(own)
    own["around"] = time.perf_counter_ns() - t0
    leaf()


def main():
    print("ready", flush=True)
    sys.stdin.readline()
    top()
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    own = {}
    slow_path(own)
    # slow()'s duration as the workload sees it: inside (its sleep) <= traced <= around (the call).
    print(json.dumps(own), file=sys.stderr)


main()
