"""pycount --source watch -- COMMAND's workload (tests/watch.rs): early() is defined at once and
first called after 1.5 s (pyprobe searches a starting command's modules every 0.1 s), 100 times,
then 30 times in a thread started then; watch_later.py is imported after that, and its
later_mod() called 60 times 2.5 s later (searched again each second)."""
import sys
import threading
import time


def early():
    return 1


def worker():
    for _ in range(30):
        early()


time.sleep(1.5)
for _ in range(100):
    early()
t = threading.Thread(target=worker)
t.start()
t.join()
sys.path.insert(0, __file__.rsplit("/", 1)[0])
import watch_later  # noqa: E402

time.sleep(2.5)
for _ in range(60):
    watch_later.later_mod()
