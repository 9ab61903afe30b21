"""A workload with known call counts (see tests/count.rs); waits for a line on stdin first."""
import asyncio
import select
import sys
import threading


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def raiser(depth):
    if depth == 0:
        raise ValueError("deep")
    raiser(depth - 1)


def catcher():
    try:
        raiser(3)
    except ValueError:
        pass


def gen(n):
    for i in range(n):
        yield i


def echo():
    received = 0
    while True:
        try:
            received = yield received
        except KeyError:
            received = -1


def drive_echo():
    # Entries of echo(): the first next(), 5 sends, a throw() it catches, and close().
    g = echo()
    next(g)
    for i in range(5):
        g.send(i)
    g.throw(KeyError)
    g.close()


class Shape:
    def __init__(self):
        self.area = 0

    def method(self):
        return self.area


class Circle:
    def __init__(self):
        self.r = 1


def thread_work():
    return 1


def worker():
    for _ in range(500):
        thread_work()


def größe():
    return 1


def 函数():
    return 2


def a_function_name_that_is_much_longer_than_the_kernel_keeps_for_a_name_one():
    return 1


def a_function_name_that_is_much_longer_than_the_kernel_keeps_for_a_name_two():
    return 2


async def leaf():
    return 1


async def runner():
    for _ in range(50):
        await leaf()
    for _ in range(10):
        await asyncio.sleep(0)


def func1():
    pass


def func2():
    pass


def func3():
    pass


def wait_for_go():
    # Wakes every 10 ms rather than blocking in read(): the main thread then takes remote-exec
    # requests (CPython 3.14's PEP 768, pyprobe --activate-trampoline) while it waits.
    while not select.select([sys.stdin], [], [], 0.01)[0]:
        pass
    sys.stdin.readline()


def main():
    print("ready", flush=True)
    wait_for_go()
    fib(20)                                  # 21891 calls
    for _ in range(100):                     # catcher 100, raiser 400
        catcher()
    for _ in range(50):                      # gen: 50 x (10 yields + 1 return) = 550
        list(gen(10))
    for _ in range(10):                      # drive_echo 10, echo 10 x 8 = 80
        drive_echo()
    s = Shape()                              # Shape.__init__ 1 (+ 20 below)
    for _ in range(300):                     # method 300
        s.method()
    for _ in range(20):
        Shape()
    for _ in range(30):                      # Circle.__init__ 30
        Circle()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:                        # worker 4, thread_work 2000
        t.start()
    for t in threads:
        t.join()
    for _ in range(7):
        größe()
    for _ in range(5):
        函数()
    for _ in range(3):
        a_function_name_that_is_much_longer_than_the_kernel_keeps_for_a_name_one()
    for _ in range(4):
        a_function_name_that_is_much_longer_than_the_kernel_keeps_for_a_name_two()
    loop = asyncio.new_event_loop()          # asyncio.run() arrived in 3.7
    loop.run_until_complete(runner())        # leaf 50, runner 11 (one per resume)
    loop.close()
    for function, times in ((func1, 1000), (func2, 200), (func3, 30)):
        for _ in range(times):
            function()


main()
