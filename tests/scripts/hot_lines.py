"""Known per-line execution counts (see tests/lines.rs) through loops, generators, exceptions
and threads; checks its own results, so a miscomputing interpreter fails the test."""
import sys
import threading


def hot(n):
    total = 0
    for i in range(n):
        total += i  # line:hot
    return total


def gen(n):
    for i in range(n):
        yield i * 2  # line:yield


def raiser(i):
    raise ValueError(i)  # line:raise


def exceptions(n):
    caught = 0
    for i in range(n):
        try:
            raiser(i)
        except ValueError as e:
            caught += e.args[0] == i  # line:caught
    return caught


def thread_body(n, out, k):
    s = 0
    for i in range(n):
        s += i * k  # line:thread
    out[k] = s


print("ready", flush=True)
sys.stdin.readline()
assert hot(1000) == 499500
assert sum(gen(300)) == 2 * sum(range(300))
assert exceptions(200) == 200
results = {}
threads = [threading.Thread(target=thread_body, args=(2500, results, k)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert results == {k: k * sum(range(2500)) for k in range(4)}, results
print("ok", flush=True)
