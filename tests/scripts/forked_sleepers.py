"""Forks two children that call work() 4 and 6 times, print "PID <pid> <calls>", and then
sleep, their standard streams closed (they outlive a session ended by --duration); the parent calls work() twice and sleeps."""
import os
import time


def work(n):
    return n + 1


for calls in (4, 6):
    if os.fork() == 0:
        for i in range(calls):
            work(i)
        print(f"PID {os.getpid()} {calls}", flush=True)
        # Outliving the session, holding none of pyprobe's pipes open.
        for fd in (0, 1, 2):
            os.close(fd)
        time.sleep(120)
        os._exit(0)
work(0)
work(1)
print(f"PID {os.getpid()} 2", flush=True)
time.sleep(120)
