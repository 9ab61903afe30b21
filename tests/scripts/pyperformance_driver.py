"""Runs one pyperformance benchmark's work function without pyperf (a stub stands in), so the
same deterministic work can be counted by cProfile (--profile) or traced by pycount.

usage: pyperformance_driver.py BENCH_FILE EXPR [--profile | --forever]
EXPR is evaluated in the benchmark module's namespace, e.g. "Richards().run(1)"; with --forever
it runs again and again after "go" until the process is killed.
"""
import cProfile
import importlib.util
import json
import pstats
import sys
import time
import types

path, expr = sys.argv[1], sys.argv[2]
stub = types.ModuleType("pyperf")
stub.perf_counter = time.perf_counter
sys.modules["pyperf"] = stub
spec = importlib.util.spec_from_file_location("benchmark_under_test", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
code = compile(expr, "<driver>", "eval")


def work():
    eval(code, vars(module))


if "--profile" in sys.argv:
    prof = cProfile.Profile()
    prof.enable()
    work()
    prof.disable()
    stats = pstats.Stats(prof).stats
    print(json.dumps([
        {"file": f, "line": line, "name": name, "count": ncalls}
        for (f, line, name), (_cc, ncalls, _tt, _ct, _callers) in stats.items()
        if f == path
    ]))
else:
    print("ready", flush=True)
    sys.stdin.readline()
    work()
    while "--forever" in sys.argv:
        work()
