"""pycount --source auto's workload: after "go", rounds of hot() 100 times and rare() once, until
"stop" on stdin; then the number of rounds it ran, on stderr (the tests drain its stdout)."""
import sys
import threading


def hot():
    pass


def rare():
    pass


hot()
rare()
print("ready", flush=True)
sys.stdin.readline()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
rounds = 0
while not stop.is_set():
    for _ in range(100):
        hot()
    rare()
    rounds += 1
print(rounds, file=sys.stderr, flush=True)
