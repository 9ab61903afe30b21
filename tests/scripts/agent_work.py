"""Known behaviour for pyprobe agent: GC collections per generation, calls of one function and
the imports of a chain of three modules (svcpkg_a -> b -> c, where they are beside this file),
each counted by the workload itself. Prints "ready", waits for a line on stdin, works, prints
one JSON line (its own gc.get_stats() before and after, and its calls), then idles until stdin
closes or says "exit".

argv: COLLECTIONS (per generation, e.g. "3,2,1")  CALLS  [busy: call forever after the work]
"""
import gc
import json
import os
import sys

gc.disable()  # only the collections made here (and the interpreter's own before this line)


def agent_handle(i):
    return i + 1


def agent_other(i):
    return i


def garbage(n):
    for _ in range(n):
        a = []
        a.append(a)


gens = [int(x) for x in sys.argv[1].split(",")]
calls = int(sys.argv[2])
busy = len(sys.argv) > 3 and sys.argv[3] == "busy"
print("ready", flush=True)
sys.stdin.readline()
before = gc.get_stats()
for generation, n in enumerate(gens):
    for _ in range(n):
        garbage(10)
        gc.collect(generation)
chain = ["svcpkg_a", "svcpkg_b", "svcpkg_c"]
imported = 0
if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "svcpkg_a.py")):
    import svcpkg_a  # noqa: F401

    imported = sum(m in sys.modules for m in chain)
made = 0
for i in range(calls):
    agent_handle(i)
    agent_other(i)
    made += 1
print(json.dumps({"before": before, "after": gc.get_stats(), "calls": made, "imports": imported}), flush=True)
if busy:
    # Keeps the function probes hot until stdin says what next; each line: collections of
    # generation 2 to make, then a JSON line of stats.
    import threading

    lines = []
    reader = threading.Thread(target=lambda: lines.extend(sys.stdin), daemon=True)
    reader.start()
    i = 0
    while reader.is_alive() or lines:
        agent_handle(i)
        i += 1
        while lines:
            cmd = lines.pop(0).strip()
            if cmd == "exit":
                sys.exit(0)
            b = gc.get_stats()
            for _ in range(int(cmd)):
                gc.collect(2)
            print(json.dumps({"before": b, "after": gc.get_stats()}), flush=True)
    sys.exit(0)
for line in sys.stdin:
    if line.strip() == "exit":
        break
