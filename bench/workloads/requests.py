"""Bench workload: a request handler that spends most of its time in C (sorting, JSON, hashing)
and makes a few Python calls per request, as services do; N requests in the timed region."""
import hashlib
import json
import sys

from harness import measure

PAYLOAD = [{"id": i, "name": f"item{i}", "tags": ["a", "b", str(i % 7)]} for i in range(40)]


def parse(body):
    return json.loads(body)


def validate(doc):
    return all(isinstance(d["id"], int) for d in doc)


def digest(doc):
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def handle(body):
    doc = parse(body)
    if not validate(doc):
        raise ValueError("bad request")
    doc.sort(key=lambda d: -d["id"])
    return digest(doc)


def serve(n):
    body = json.dumps(PAYLOAD)
    for _ in range(n):
        handle(body)


n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
measure(serve, n, calls=None)
