"""2000 threads parked on an Event in `park`, then "ready"; exits on a line from stdin."""
import sys
import threading

stop = threading.Event()


def park():
    stop.wait()


threads = [threading.Thread(target=park, daemon=True) for _ in range(2000)]
for t in threads:
    t.start()
print("ready", flush=True)
sys.stdin.readline()
stop.set()
