"""What a bench workload does around its work, as bench.py drives it: says it is ready, waits
for a line (the tracer attaches meanwhile), runs the work timed in wall-clock and thread CPU
time, prints the result as one JSON line (with the workload's own keys), and waits for a line
before it exits. Workloads whose result counts calls exactly (calls.py, rare.py) keep their
own copy: a call through here would be one more."""
import json
import sys
import time


def measure(work, *args, **result):
    print("ready", flush=True)
    sys.stdin.readline()
    t = time.perf_counter()
    c = time.thread_time()
    work(*args)
    dt = time.perf_counter() - t
    cpu = time.thread_time() - c
    print(json.dumps({"seconds": dt, "cpu_seconds": cpu, **result}), flush=True)
    sys.stdin.readline()
