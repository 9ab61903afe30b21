"""Bench workload for pyprobe agent's fleet: a small service that handles 20 requests every
10 ms (a few calls each, some allocation, cyclic garbage its GC collects) until stdin closes."""
import json
import sys
import threading
import time


def parse(i):
    return {"id": i, "items": [i, i + 1, i + 2]}


def handle(i):
    req = parse(i)
    node = {"req": req}
    node["self"] = node  # cyclic: left to the GC
    return json.dumps(req)


print("ready", flush=True)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
i = 0
while not stop.is_set():
    for _ in range(20):
        handle(i)
        i += 1
    time.sleep(0.01)
