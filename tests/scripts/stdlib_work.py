"""Deterministic standard-library work (json, difflib, textwrap, fractions) for the cProfile
oracle test. With --profile it runs the work under cProfile and prints exact per-function call
counts as JSON; otherwise it waits for a line on stdin, then does the same work untraced."""
import difflib
import fractions
import json
import sys
import textwrap

from harness import print_cprofile_counts


def work():
    doc = {"items": [{"id": i, "name": f"item{i}", "tags": ["a", "b"], "ratio": i / 7} for i in range(200)]}
    text = json.dumps(doc, indent=2, sort_keys=True)
    assert json.loads(text) == doc
    a = text.splitlines()
    b = [line.replace("item1", "ITEM1") for line in a]
    list(difflib.unified_diff(a, b, lineterm=""))
    textwrap.fill(" ".join(f"word{i}" for i in range(500)), width=40)
    total = sum(fractions.Fraction(1, n) for n in range(1, 60))
    return total


if __name__ == "__main__":
    if "--profile" in sys.argv:
        print_cprofile_counts(work, lambda f: f != "~")
    else:
        print("ready", flush=True)
        sys.stdin.readline()
        work()
