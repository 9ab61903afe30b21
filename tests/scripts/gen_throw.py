"""Generators driven by send(), throw() and close(), and one abandoned mid-way (see tests/flow.rs)."""
import sys


def gen():
    try:
        yield 1
        yield 2
    except ValueError:
        yield 3


def after():
    pass


def user():
    g = gen()
    next(g)
    g.send(None)
    g.throw(ValueError)
    g.close()
    after()
    for _ in gen():
        break
    after()


def main():
    print("ready", flush=True)
    sys.stdin.readline()
    user()
    after()


main()
