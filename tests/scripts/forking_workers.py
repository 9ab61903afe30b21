"""Parent and forked children each call work() a known number of times.

The parent calls it 3 times, two os.fork() children 5 and 7 times (the second forks a
grandchild that calls it 11 times), and a multiprocessing pool of 2 workers (fork start
method) runs work_batch over [13, 17]: 13 + 17 calls of work(), one work_batch per item.
A last child execs /bin/true (another program: not followed). Each process prints
"PID <pid> <role>" so that the test knows whose row is whose.
"""
import multiprocessing
import os
import sys


def work(n):
    return n + 1


def work_batch(k):
    for i in range(k):
        work(i)
    return os.getpid()


def child(role, calls):
    print(f"PID {os.getpid()} {role}", flush=True)
    for i in range(calls):
        work(i)


def fork_child(role, calls, then=None):
    pid = os.fork()
    if pid == 0:
        child(role, calls)
        if then:
            then()
        os._exit(0)
    os.waitpid(pid, 0)


def grandchild():
    fork_child("grandchild", 11)


if __name__ == "__main__":
    sys.stdin.readline()
    print(f"PID {os.getpid()} parent", flush=True)
    for i in range(3):
        work(i)
    fork_child("child5", 5)
    fork_child("child7", 7, then=grandchild)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for pid, k in zip(pool.map(work_batch, [13, 17], chunksize=1), [13, 17]):
            print(f"PID {pid} batch{k}", flush=True)
    pid = os.fork()
    if pid == 0:
        os.execv("/bin/true", ["/bin/true"])
    os.waitpid(pid, 0)
