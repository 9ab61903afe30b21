"""A live CPython 3.11 whose worker thread has a corrupt frame chain, as a torn or hostile
process may have: its function w2 points its caller link (_PyInterpreterFrame.previous) at
unmapped memory (argv[1] `unmapped`) or at itself (`cycle`), then waits forever (it must never
return). The main thread says ready and waits for a line on stdin, then exits at once."""
import ctypes
import os
import sys
import threading

# CPython 3.11 (x86-64): PyFrameObject.f_frame, and _PyInterpreterFrame.previous.
F_FRAME = 24
PREVIOUS = 48

parked = threading.Event()
never = threading.Event()


def corrupt(frame):
    iframe = ctypes.c_void_p.from_address(id(frame) + F_FRAME).value
    link = ctypes.c_void_p.from_address(iframe + PREVIOUS)
    link.value = 0x10 if sys.argv[1] == "unmapped" else iframe


def w2():
    corrupt(sys._getframe())
    parked.set()
    never.wait()


def w1():
    w2()


threading.Thread(target=w1, daemon=True).start()
parked.wait()
print("ready", flush=True)
sys.stdin.readline()
os._exit(0)
