"""Calls `step` for a while after "go" on stdin, then replaces itself (exec) with /bin/sleep: a
program that is not the traced interpreter."""
import os
import sys


def step(i):
    return i + 1


print("ready", flush=True)
sys.stdin.readline()
n = 0
for _ in range(500):
    n = step(n)
os.execv("/bin/sleep", ["sleep", "30"])
