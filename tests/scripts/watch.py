"""Known calls for pycount's watchpoint source (tests/watch.rs). Before "ready": target() runs 5
times. After "go": target() 1000 times, Shape.area 300 times, Shape() 201 times (its __init__),
keyed() 270 times from C (150 by map, 120 as sorted's key), late() 70 times (first called after
attach), in_thread() 90 times in a thread started after attach, gen() 40 times (a generator
function: its calls, not its resumes). With the argument "later", first it imports
watch_later.py, waits 2.5 s (pyprobe searches again each second) and calls its later_mod() 60
times. Then "done", and it waits for a line to exit."""
import sys
import threading


def target(x=None):
    return x


class Shape:
    def __init__(self):
        self.n = 1

    def area(self):
        return self.n


def keyed(x):
    return -x


def late():
    x = 1
    return x


def in_thread():
    return [3]


def gen():
    yield 1
    yield 2


def worker():
    for _ in range(90):
        in_thread()


for _ in range(5):
    target()
print("ready", flush=True)
sys.stdin.readline()
if sys.argv[1:] == ["later"]:
    import time

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import watch_later

    time.sleep(2.5)
    for _ in range(60):
        watch_later.later_mod()
for _ in range(1000):
    target()
s = Shape()
for _ in range(300):
    s.area()
for _ in range(200):
    Shape()
list(map(keyed, range(150)))
sorted(range(120), key=keyed)
for _ in range(70):
    late()
t = threading.Thread(target=worker)
t.start()
t.join()
for _ in range(40):
    for _ in gen():
        pass
print("done", flush=True)
sys.stdin.readline()
