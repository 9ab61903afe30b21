"""Threads parked at known depths: the main thread in a -> b -> c, a worker in w1 -> w2, each
waiting on an Event at a known line; prints the lines as JSON, then "ready"; exits on stdin EOF
or a line."""
import json
import sys
import threading

stop = threading.Event()
where = {}


def c(depth):
    where[threading.get_native_id()] = ["c", "b", "a"]
    local_int = 123456789012345
    local_neg = -7
    local_float = 2.5
    local_str = "hello"
    local_list = [1, 2, 3]
    local_dict = {"k": 1, "j": 2}
    local_bytes = b"ab"
    local_none = None
    local_bool = True
    stop.wait()  # LINE_C
    return depth, local_int, local_neg, local_float, local_str, local_list, local_dict, local_bytes, local_none, local_bool


def b():
    return c(3)  # LINE_B


def a():
    return b()  # LINE_A


def w2():
    stop.wait()  # LINE_W2


def w1():
    w2()  # LINE_W1


worker = threading.Thread(target=w1, name="parked-worker")
worker.start()
ready = threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True)
lines = {}
for n, text in enumerate(open(__file__), 1):
    if "# LINE_" in text and "lines[" not in text:
        lines[text.split("# LINE_")[1].strip()] = n
print(json.dumps({"lines": lines, "main": threading.get_native_id(), "worker": worker.native_id}))
print("ready", flush=True)
ready.start()
a()  # LINE_MAIN
worker.join()
