"""A service that never stops on its own: two threads call five levels deep, over and over, and
re-import a three-module chain, so tracers can attach and detach while calls are in flight."""
import importlib
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def level5(n):
    return n + 1


def level4(n):
    return level5(n) + 1


def level3(n):
    return level4(n) + 1


def level2(n):
    return level3(n) + 1


def level1(n):
    return level2(n) + 1


def serve():
    # Entered before any tracer attaches and never left: calls below it are at most 5 deep.
    n = 0
    while True:
        n = level1(n) % 1000


def reimport():
    # Each round loads svcpkg_a, which loads svcpkg_b, which loads svcpkg_c: nested imports.
    while True:
        for name in ("svcpkg_a", "svcpkg_b", "svcpkg_c"):
            sys.modules.pop(name, None)
        importlib.import_module("svcpkg_a")


importer = os.environ.get("STEADY_IMPORTS") == "1"
worker = threading.Thread(target=reimport if importer else serve, daemon=True)
worker.start()
print("ready", flush=True)
if importer:
    reimport()
else:
    serve()
