"""A rare function among hot ones, with threads that exist at attach: three threads parked
before "ready" (each gets a breakpoint of its own when pycount attaches). After "go" the main
thread calls hot() 30000 times and rare() 3000 times, prints "done", and waits for a line."""
import sys
import threading


def rare():
    pass


def hot():
    pass


parked = threading.Event()
threads = [threading.Thread(target=parked.wait, daemon=True) for _ in range(3)]
for t in threads:
    t.start()
rare()
hot()
print("ready", flush=True)
sys.stdin.readline()
for i in range(30000):
    hot()
    if i % 10 == 0:
        rare()
print("done", flush=True)
sys.stdin.readline()
parked.set()
