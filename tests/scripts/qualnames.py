"""Two classes with a same-named method and a module function of that name too (see
tests/count.rs: qualified --filter patterns), each called a known number of times."""


class A:
    def run(self):  # line:A.run
        return 1


class B:
    def run(self):  # line:B.run
        return 2

    class Inner:  # line:B.Inner
        def run(self):  # line:B.Inner.run
            return 3


def run():  # line:run
    def helper():  # line:run.<locals>.helper
        return 4

    return helper()


a, b, inner = A(), B(), B.Inner()
for method, times in ((a.run, 3), (b.run, 5), (inner.run, 2), (run, 7)):
    for _ in range(times):
        method()
