"""Starts 1500 short-lived threads one after another (more than the kernel's 1024 thread slots)."""
import sys
import threading


def thread_fn():
    return 1


print("ready", flush=True)
sys.stdin.readline()
for _ in range(1500):
    t = threading.Thread(target=thread_fn)
    t.start()
    t.join()
