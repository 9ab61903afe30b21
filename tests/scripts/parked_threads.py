"""Rare functions among hot ones, with threads that exist at attach: three threads parked
before "ready" (each gets a breakpoint of its own when pycount attaches). After "go" the main
thread calls late() for the first time and sleeps two seconds (pycount sets its breakpoint
meanwhile), then calls hot() 30000 times, rare() 3000 times and late() 3000 more times, prints
"done", and waits for a line."""
import sys
import threading
import time


def rare():
    pass


def hot():
    pass


def late():
    pass


parked = threading.Event()
threads = [threading.Thread(target=parked.wait, daemon=True) for _ in range(3)]
for t in threads:
    t.start()
rare()
hot()
print("ready", flush=True)
sys.stdin.readline()
late()
time.sleep(2)
for i in range(30000):
    hot()
    if i % 10 == 0:
        rare()
    elif i % 10 == 5:
        late()
print("done", flush=True)
sys.stdin.readline()
parked.set()
