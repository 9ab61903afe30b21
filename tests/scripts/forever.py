"""Calls a function forever and reports progress, so tests can see it is alive and unharmed."""
import sys
import time


def tick():
    return 1


print("ready", flush=True)
n = 0
last = time.monotonic()
while True:
    tick()
    n += 1
    if time.monotonic() - last > 0.2:
        print(n, flush=True)
        last = time.monotonic()
