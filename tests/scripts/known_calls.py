"""A workload with known call counts (see tests/count.rs); waits for a line on stdin first."""
import asyncio
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


def main():
    print("ready", flush=True)
    sys.stdin.readline()
    fib(20)                                  # 21891 calls
    for _ in range(100):                     # catcher 100, raiser 400
        catcher()
    for _ in range(50):                      # gen: 50 x (10 yields + 1 return) = 550
        list(gen(10))
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
    asyncio.run(runner())                    # leaf 50, runner 11 (one per resume)
    for _ in range(1000):
        func1()
    for _ in range(200):
        func2()
    for _ in range(30):
        func3()


main()
