"""Known CPU shares for the agent's profiles: two processes (this one and a forked child) take
turns on one CPU through a pair of pipes, so that whatever else the machine runs, 3/4 of their
CPU time is in burn_a (the parent) and 1/4 in burn_b (the child). Prints "ready PARENT CHILD",
then burns until stdin closes or the other process goes.
"""
import os
import sys
import threading
import time

UNIT = 0.007  # seconds of CPU per unit: not a divisor of a sampler's 10 ms period


def burn_a(units):
    end = time.thread_time() + units * UNIT
    x = 0
    while time.thread_time() < end:
        x += 1
    return x


def burn_b(units):
    end = time.thread_time() + units * UNIT
    x = 0
    while time.thread_time() < end:
        x += 1
    return x


to_child_r, to_child_w = os.pipe()
to_parent_r, to_parent_w = os.pipe()
child = os.fork()
if child == 0:
    os.close(to_child_w)
    os.close(to_parent_r)
    while os.read(to_child_r, 1):
        burn_b(1)
        os.write(to_parent_w, b"t")
    os._exit(0)
os.close(to_child_r)
os.close(to_parent_w)
print("ready", os.getpid(), child, flush=True)
# Stdin closing (or "exit") ends the parent; the child sees its pipe close and ends too.
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
while True:
    burn_a(3)
    os.write(to_child_w, b"t")
    if not os.read(to_parent_r, 1):
        break
