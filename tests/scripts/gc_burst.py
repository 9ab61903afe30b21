"""A burst of young-generation collections (see tests/gc.rs), more than a small pause buffer
holds while nobody reads pygc's output. Prints "ready", waits for a line, collects, prints its
own count as JSON, then waits for a second line before exiting."""
import gc
import json
import sys

from harness import say

COLLECTIONS = 5000


def main():
    gc.disable()
    say("ready")
    sys.stdin.readline()
    for _ in range(COLLECTIONS):
        gc.collect(0)
    say(json.dumps({"collections": COLLECTIONS}))
    sys.stdin.readline()


main()
