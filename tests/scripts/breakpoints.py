"""Known calls for pycount's breakpoint source. Before "ready": warm(), A.run, B.run, spare() and
counter() run once each (their trampoline stubs exist at attach). After "go": warm() 3000 times, A.run 700
and B.run 500 (one name, two functions), cold() 1000 times (first called after attach), a thread
started after attach calls warm() 250 times, counter() is resumed 4 times per use in 100 uses
(its creations are not calls), hot() 20000 times and spare() 10 times."""
import sys
import threading


def warm():
    pass


def cold():
    pass


def hot():
    pass


class A:
    def run(self):
        pass


class B:
    def run(self):
        pass


def spare():
    pass


def counter():
    yield 1
    yield 2
    yield 3


warm()
A().run()
B().run()
list(counter())
spare()
print("ready", flush=True)
sys.stdin.readline()
a, b = A(), B()
for _ in range(3000):
    warm()
for _ in range(700):
    a.run()
for _ in range(500):
    b.run()
for _ in range(1000):
    cold()
t = threading.Thread(target=lambda: [warm() for _ in range(250)])
t.start()
t.join()
for _ in range(100):
    list(counter())
for _ in range(20000):
    hot()
for _ in range(10):
    spare()
