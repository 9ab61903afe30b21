"""What test workloads share, none of it a function the tests count or look for: one write()
per line, CPU burnt by the thread's own clock, an asyncio server run for a number of CPU
seconds, and cProfile's exact per-function counts (the oracle). Python::file copies it beside a
workload it copies into a chroot."""
import json
import os
import sys
import time


def say(line):
    """One write() per line: a pyprobe that spawned us shares this stdout, and a line written in
    pieces (as print() may) can have one of pyprobe's lines land in the middle of it."""
    os.write(1, (line + "\n").encode())


def spin(seconds):
    """Burns `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


def serve_for_cpu_seconds(serve, spent):
    """Says "ready", waits for a line, then runs task "main" awaiting task "server" (the
    coroutine serve(end)) until argv[1] seconds of CPU time (default 3) are spent; prints
    `spent` as JSON."""
    import asyncio

    async def main(duration):
        asyncio.current_task().set_name("main")
        end = time.thread_time() + duration
        await asyncio.create_task(serve(end), name="server")

    print("ready", flush=True)
    sys.stdin.readline()
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0))
    print(json.dumps(spent), flush=True)


def print_cprofile_counts(work, keep):
    """Runs work() under cProfile and prints, as JSON, the exact call count of each function
    whose file `keep` accepts: [{"file", "line", "name", "count"}]."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    work()
    prof.disable()
    stats = pstats.Stats(prof).stats
    print(json.dumps([
        {"file": f, "line": line, "name": name, "count": ncalls}
        for (f, line, name), (_cc, ncalls, _tt, _ct, _callers) in stats.items()
        if keep(f)
    ]))
