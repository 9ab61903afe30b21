"""A target that renames its functions and their file with terminal control sequences (OSC,
CR LF, DEL, a C1 CSI, a ';'), as a hostile process may, to see that pyprobe's text output
escapes them (tests/hostile.rs). argv[1]: `calls` (100 calls of work after "go" on stdin),
`burn` (calls work until killed, after "go"), or `park` (waits in park, called from work, until a
line comes)."""
import sys

NAME = "evil\x1b]0;pwned\x07\r\nFAKE LINE\x7f\x9b2J;end"
FILE = "/tmp/\x1b[31mred\x1b[0m\r\nfile.py"


def work(n):
    s = 0
    for i in range(n):
        s += i
    return s


def park():
    return sys.stdin.readline()


def outer():
    return park()


for f in (work, park):
    f.__code__ = f.__code__.replace(co_name=NAME, co_qualname=NAME, co_filename=FILE)

mode = sys.argv[1]
if mode == "park":
    print("ready", flush=True)
    outer()
    sys.exit(0)
print("ready", flush=True)
sys.stdin.readline()
if mode == "calls":
    for _ in range(100):
        work(10)
elif mode == "burn":
    while True:
        work(1000)
