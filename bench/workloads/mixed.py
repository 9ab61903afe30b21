"""Bench workload: realistic mixed Python (json, classes, dicts, comprehensions)."""
import json
import sys

from harness import measure


class Order:
    def __init__(self, oid, items):
        self.oid = oid
        self.items = items

    def total(self):
        return sum(price * qty for price, qty in self.items)

    def to_dict(self):
        return {"id": self.oid, "total": self.total(), "n": len(self.items)}


def make_orders(n):
    return [Order(i, [(j * 1.5, j % 3 + 1) for j in range(i % 7 + 1)]) for i in range(n)]


def summarize(orders):
    by_size = {}
    for o in orders:
        d = o.to_dict()
        by_size.setdefault(d["n"], []).append(d["total"])
    return {k: round(sum(v), 2) for k, v in sorted(by_size.items())}


def roundtrip(summary):
    return json.loads(json.dumps(summary))


def hot(rounds):
    for _ in range(rounds):
        roundtrip(summarize(make_orders(200)))


rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 300
measure(hot, rounds)
