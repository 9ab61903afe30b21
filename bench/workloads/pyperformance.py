"""Bench workload: the hot region of one of pyperformance's benchmark programs (fetched by
scripts/bench into target/pyperformance), run once, then REPEAT times timed, with a stub for pyperf.

usage: pyperformance.py REPEAT BENCH   (richards, go, json_dumps, logging)"""
import importlib.util
import json
import os
import sys
import time
import types

BENCHMARKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "target", "pyperformance",
                          "pyperformance", "data-files", "benchmarks")
# What each program's pyperf runner would set up, and its work function's call.
WORK = {
    "richards": ("", "Richards().run(1)"),
    "go": ("", "versus_cpu()"),
    "json_dumps": ("DATA = [(globals()[c][0], range(globals()[c][1])) for c in CASES]", "bench_json_dumps(DATA)"),
    "logging": ("import io\n"
                "STREAM = io.StringIO()\n"
                "LOGGER = logging.getLogger('benchlogger')\n"
                "LOGGER.propagate = False\n"
                "LOGGER.addHandler(logging.StreamHandler(stream=STREAM))\n"
                "LOGGER.setLevel(logging.WARNING)",
                "[f(1000, LOGGER, STREAM) for f in BENCHMARKS.values()]"),
}

repeat, name = int(sys.argv[1]), sys.argv[2]
stub = types.ModuleType("pyperf")
stub.perf_counter = time.perf_counter
sys.modules["pyperf"] = stub
spec = importlib.util.spec_from_file_location(f"bm_{name}", os.path.join(BENCHMARKS, f"bm_{name}", "run_benchmark.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
setup, call = WORK[name]
exec(setup, vars(module))
code = compile(call, "<bench>", "eval")
# Once before the timed region, as a live service has run its code before pyprobe comes: every
# function has its trampoline stub (what --filter's breakpoints watch) and warm caches.
eval(code, vars(module))
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter()
c = time.thread_time()
for _ in range(repeat):
    eval(code, vars(module))
dt = time.perf_counter() - t
cpu = time.thread_time() - c
print(json.dumps({"seconds": dt, "cpu_seconds": cpu}), flush=True)
sys.stdin.readline()
