"""As many calls as fast as possible, to overrun a tiny ring buffer (see tests/flow.rs)."""
import sys


def tick():
    pass


def main():
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(100_000):
        tick()


main()
