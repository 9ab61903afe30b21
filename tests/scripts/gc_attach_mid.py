"""A collection already under way when pygc attaches (see tests/gc.rs): a finalizer run by the
collector prints "collecting" and waits for a line on stdin, so the test attaches in the middle
of that collection. Then two more full collections, its own results as JSON, and a final wait."""
import gc
import json
import sys

from harness import say


class WaitsInFinalizer:
    def __init__(self):
        self.me = self  # a cycle: only the collector frees it, and it runs __del__ first

    def __del__(self):
        say("collecting")
        sys.stdin.readline()


def main():
    gc.disable()
    WaitsInFinalizer()
    first = gc.collect()
    after = [gc.collect() for _ in range(2)]
    say(json.dumps({"first": first, "after": after}))
    sys.stdin.readline()


main()
