"""A workload with known GC collections (see tests/gc.rs): automatic collection off, then an
exact number of gc.collect() calls per generation, from the main thread and from 4 threads.
Prints "ready", waits for a line, collects, prints its own results as JSON, then waits for a
second line before exiting (so that interpreter shutdown's own collections can be kept out).
With the argument "paced", the main thread sleeps 0.1 s after each of its collections."""
import gc
import json
import sys
import threading
import time

from harness import say

GEN2_MAIN = 7
GEN1 = 2
GEN0 = 3
THREADS = 4
PER_THREAD = 5


def garbage(cycles):
    """Makes `cycles` unreachable self-referencing lists: only the collector can free them."""
    for _ in range(cycles):
        a = []
        a.append(a)


PACE = 0.1 if sys.argv[1:] == ["paced"] else 0


def collect(generation, cycles, log):
    garbage(cycles)
    log.append((generation, threading.get_native_id(), gc.collect(generation)))


def thread_main(log):
    for i in range(PER_THREAD):
        collect(2, 100 + i, log)


def main():
    gc.disable()
    say("ready")
    sys.stdin.readline()
    start = time.time_ns()
    log = []
    for i in range(GEN2_MAIN):
        collect(2, 1000 + i, log)
        time.sleep(PACE)
    for i in range(GEN1):
        collect(1, 500 + i, log)
        time.sleep(PACE)
    for i in range(GEN0):
        collect(0, 200 + i, log)
        time.sleep(PACE)
    threads = [threading.Thread(target=thread_main, args=(log,)) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = {
        "pid": threading.get_native_id(),
        "collections": [{"generation": g, "tid": t, "collected": n} for g, t, n in log],
        "start_unix_ns": start,
        "end_unix_ns": time.time_ns(),
    }
    say(json.dumps(result))
    sys.stdin.readline()


main()
