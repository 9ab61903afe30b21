"""Bench workload: cyclic garbage and explicit collections (N gen-2 collections, plus automatic)."""
import gc
import json
import sys
import time


class Node:
    def __init__(self):
        self.peer = None


def churn(k):
    for _ in range(k):
        a, b = Node(), Node()
        a.peer, b.peer = b, a


def hot(rounds):
    for _ in range(rounds):
        churn(2000)
        gc.collect()


rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter()
c = time.thread_time()
hot(rounds)
dt = time.perf_counter() - t
cpu = time.thread_time() - c
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "explicit_collections": rounds}), flush=True)
sys.stdin.readline()
