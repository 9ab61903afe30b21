"""A thread parked 5002 Python frames deep (5000 of down, park, <module>), past what pyprobe
stacks shows (4096) and what the sampler keeps (128); says ready from there, and waits for
a line on stdin."""
import sys

sys.setrecursionlimit(10000)


def park():
    print("ready", flush=True)
    return sys.stdin.readline()


def down(n):
    return park() if n == 0 else down(n - 1)


down(4999)
