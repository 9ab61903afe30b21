"""Runs one pyperformance benchmark's work function without pyperf (a stub stands in), so the
same deterministic work can be counted by cProfile (--profile) or traced by pycount.

usage: pyperformance_driver.py BENCH_FILE EXPR [--profile | --forever]
EXPR is evaluated in the benchmark module's namespace, e.g. "Richards().run(1)"; with --forever
it runs again and again after "go" until the process is killed.
"""
import importlib.util
import sys
import time
import types

from harness import print_cprofile_counts

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
    print_cprofile_counts(work, lambda f: f == path)
else:
    print("ready", flush=True)
    sys.stdin.readline()
    work()
    while "--forever" in sys.argv:
        work()
