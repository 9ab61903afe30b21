"""Threads started after "go": two threads, each burning argv[1] seconds (default 1) of its own
CPU in a function of its own (burn_one, burn_two); prints their native ids as JSON at the end."""
import json
import sys
import threading
import time


def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def burn_one(seconds):
    spin(seconds)


def burn_two(seconds):
    spin(seconds)


seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
print("ready", flush=True)
sys.stdin.readline()
threads = [threading.Thread(target=f, args=(seconds,)) for f in (burn_one, burn_two)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"burn_one": threads[0].native_id, "burn_two": threads[1].native_id}), flush=True)
