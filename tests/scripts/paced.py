"""Calls tick() 100 times spread over about a second, for --interval tests."""
import sys
import time


def tick():
    return 1


print("ready", flush=True)
sys.stdin.readline()
for _ in range(100):
    tick()
    time.sleep(0.01)
