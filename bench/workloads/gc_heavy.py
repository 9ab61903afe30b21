"""Bench workload: cyclic garbage and explicit collections (N gen-2 collections, plus automatic)."""
import gc
import sys

from harness import measure


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
measure(hot, rounds, explicit_collections=rounds)
