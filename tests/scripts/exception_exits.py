"""Frames that exit by exception: on 3.15 their return probe does not fire (tests/count.rs)."""
import sys
def gen():
    yield 1
    raise ValueError("x")
def user2():
    try:
        for _ in gen():
            pass
    except ValueError:
        pass
def deep(n):
    if n == 0:
        raise KeyError
    deep(n - 1)
def user3():
    try:
        deep(3)
    except KeyError:
        pass
print("ready", flush=True)
sys.stdin.readline()
for _ in range(50):
    user2()
    user3()
