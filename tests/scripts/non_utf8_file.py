"""Runs code from a file whose name is not UTF-8: makes BASE/caf\\xe9/fmod.py (the byte 0xe9,
Latin-1's é, is no UTF-8), imports it, says "ready", and after a line on stdin calls its f()
CALLS times and says "done"."""
import os
import sys

base = os.fsencode(sys.argv[1])
calls = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
directory = os.path.join(base, b"caf\xe9")
os.makedirs(directory, exist_ok=True)
with open(os.path.join(directory, b"fmod.py"), "w") as f:
    f.write("def f(i):\n    return i + 1\n")
sys.path.insert(0, os.fsdecode(directory))
import fmod  # noqa: E402

print("ready", flush=True)
sys.stdin.readline()
n = 0
for _ in range(calls):
    n = fmod.f(n)
print("done", n, flush=True)
