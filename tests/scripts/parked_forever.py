"""A live service whose worker threads park forever inside Python calls (a queue get, a socket
accept, a long sleep, a lock) while the main thread keeps calling `tick`: a uretprobe's pending
return on any of them never comes back. Prints "ready", parks its workers on a line from stdin
(so that they park while a tracer is attached; at once with --now), then prints "parked" and
ticks on."""
import queue
import socket
import sys
import threading
import time

parked = threading.Barrier(5)


def wait_queue(q):
    parked.wait()
    return q.get()


def wait_accept(s):
    parked.wait()
    return s.accept()


def wait_sleep():
    parked.wait()
    time.sleep(3600)


def wait_lock(lock):
    parked.wait()
    with lock:
        pass


def worker(fn, *args):
    return fn(*args)


def tick(i):
    return i + 1


def main():
    q = queue.Queue()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    lock = threading.Lock()
    lock.acquire()
    if "--now" not in sys.argv:
        print("ready", flush=True)
        sys.stdin.readline()
    for fn, args in ((wait_queue, (q,)), (wait_accept, (s,)), (wait_sleep, ()), (wait_lock, (lock,))):
        threading.Thread(target=worker, args=(fn, *args), daemon=True).start()
    parked.wait()
    # Each worker is past the barrier, into the call it parks in, within a few microseconds.
    time.sleep(0.1)
    print("parked", flush=True)
    n = 0
    while True:
        for _ in range(100):
            n = tick(n)
        time.sleep(0.01)


if __name__ == "__main__":
    main()
