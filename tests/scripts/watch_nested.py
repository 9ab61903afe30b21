"""Nested code objects for pycount's watchpoint source (tests/watch.rs), reached only through
their enclosing function's co_consts: after "go", outer() 50 times, each calling its nested
inner() twice (100 calls of inner), mapper() 20 times, each mapping its lambda over 4 items (80
calls of the lambda), and comp() 30 times, whose list comprehension is a code object of its own
before 3.12 (30 calls of <listcomp>). Then "done", and it waits for a line to exit."""
import sys


def outer():
    def inner():
        return 1

    return inner() + inner()


def mapper():
    return list(map(lambda x: x + 1, range(4)))


def comp():
    return [i for i in range(3)]


print("ready", flush=True)
sys.stdin.readline()
for function, times in ((outer, 50), (mapper, 20), (comp, 30)):
    for _ in range(times):
        function()
print("done", flush=True)
sys.stdin.readline()
