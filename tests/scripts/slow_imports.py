"""Imports slowpkg (see tests/imports.rs) after a line on stdin; prints its own timings."""
import json
import sys
import time

print("ready", flush=True)
sys.stdin.readline()
start = time.perf_counter_ns()
import slowpkg  # noqa: E402
import slowpkg.sleepy  # noqa: E402  (already loaded: no probe fires)

elapsed = time.perf_counter_ns() - start
print("measured " + json.dumps({"import_ns": elapsed, "sleep_ns": slowpkg.sleepy.SLEPT_NS}), flush=True)
