"""Raises a known set of exceptions once released (a line on stdin), then stays alive unless
given "exit": 100 caught in their own frame, 50 caught two frames up, 40 KeyErrors raised in C
and caught in Python, 1 uncaught in a thread, 10 exception groups (3.11+), and 70 hasattr misses
and 30 exhausted generators that CPython catches inside C (never seen)."""
import sys
import threading
import time


def same_frame():
    for _ in range(100):
        try:
            raise ValueError("same")
        except ValueError:
            pass


def deep():
    raise LookupError("deep")


def middle():
    deep()


def two_up():
    for _ in range(50):
        try:
            middle()
        except LookupError:
            pass


def c_raised():
    d = {}
    for i in range(40):
        try:
            d[i]
        except KeyError:
            pass


def caught_in_c():
    for _ in range(70):
        hasattr(object(), "missing")
    for _ in range(30):
        for _ in (x for x in range(2)):
            pass


def boom():
    raise RuntimeError("uncaught in a thread")


def groups():
    if sys.version_info < (3, 11):
        return
    exec(
        "for _ in range(10):\n"
        "    try:\n"
        "        raise ExceptionGroup('g', [OSError(1), OSError(2)])\n"
        "    except* OSError:\n"
        "        pass\n",
        {},
    )


threading.excepthook = lambda args: None
print("ready", flush=True)
line = sys.stdin.readline()
same_frame()
two_up()
c_raised()
caught_in_c()
t = threading.Thread(target=boom, name="boomer")
t.start()
t.join()
groups()
print("done", flush=True)
if line.strip() != "exit":
    time.sleep(600)
