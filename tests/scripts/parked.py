"""Threads parked at known depths: the main thread in a -> b -> c and a worker in w1 -> w2, each
waiting on an Event; c holds locals of every simple type. A reporter thread waits until both
are parked, prints their stacks as Python itself sees them (sys._current_frames), innermost
first, as JSON with every thread's name, then "ready"; then it waits for a line on stdin (or EOF) and lets them go."""
import json
import linecache
import sys
import threading
import time

stop = threading.Event()


def c(depth):
    local_int = 123456789012345
    local_neg = -7
    local_float = 2.5
    local_str = "hello"
    local_list = [1, 2, 3]
    local_dict = {"k": 1, "j": 2}
    local_bytes = b"ab"
    local_none = None
    local_bool = True
    stop.wait()
    return depth, local_int, local_neg, local_float, local_str, local_list, local_dict, local_bytes, local_none, local_bool


def b():
    return c(3)


def a():
    return b()


def w2():
    stop.wait()


def w1():
    w2()


def stack(frame):
    out = []
    while frame is not None:
        out.append([frame.f_code.co_name, frame.f_code.co_filename, frame.f_lineno])
        frame = frame.f_back
    return out


def parked(frame, caller):
    """Blocked (or about to block, on the same line) in the lock of Condition.wait, called
    from `caller` (the main thread also waits in Condition.wait while it starts a thread)."""
    return frame is not None and frame.f_code.co_name == "wait" and \
        linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip() == "waiter.acquire()" and \
        caller in [name for name, _, _ in stack(frame)]


def reporter(main, worker):
    while True:
        frames = sys._current_frames()
        if parked(frames.get(main.ident), "c") and parked(frames.get(worker.ident), "w2"):
            break
        time.sleep(0.005)
    print(json.dumps({
        "main": main.native_id,
        "worker": worker.native_id,
        "stacks": {str(t.native_id): stack(frames[t.ident]) for t in (main, worker)},
        "names": {str(t.native_id): t.name for t in threading.enumerate()},
    }))
    print("ready", flush=True)
    sys.stdin.readline()
    stop.set()


worker = threading.Thread(target=w1, name="parked-worker")
worker.start()
# A name that is not ASCII: a str of one byte per character past ASCII's, stored elsewhere.
threading.Thread(target=reporter, args=(threading.current_thread(), worker), daemon=True,
                 name="reporter-\u00fc").start()
a()
worker.join()
