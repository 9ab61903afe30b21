"""A CPU-bound workload with a known split: hot_a burns 3 ms and hot_b 1 ms of CPU per round on
average (75 % / 25 %), each timed by its own clock (time.thread_time); after "go" on stdin it
runs for argv[1] seconds of its own CPU time (default 3: as many samples however busy the
machine is), then prints the measured seconds as JSON. The lengths vary at random around
those means: a fixed 4 ms cycle would alias with a fixed sampling period (every sample
landing at the same few phases of the cycle)."""
import json
import random
import sys
import time

from harness import spin


def hot_a(rng):
    t = time.thread_time()
    spin(rng.uniform(0.0002, 0.0058))
    return time.thread_time() - t


def hot_b(rng):
    t = time.thread_time()
    spin(rng.uniform(0.0001, 0.0019))
    return time.thread_time() - t


def main(duration):
    a = b = 0.0
    rng = random.Random(7)
    end = time.thread_time() + duration
    while time.thread_time() < end:
        a += hot_a(rng)
        b += hot_b(rng)
    return a, b


print("ready", flush=True)
sys.stdin.readline()
a, b = main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
print(json.dumps({"hot_a": a, "hot_b": b}), flush=True)
