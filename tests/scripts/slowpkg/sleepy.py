"""Imported by slowpkg: slow on purpose, and measures its own sleep."""
import time

_start = time.perf_counter_ns()
time.sleep(0.3)
SLEPT_NS = time.perf_counter_ns() - _start
