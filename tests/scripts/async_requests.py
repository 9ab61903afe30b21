"""Requests as short tasks: a server task keeps 4 requests in flight, each a task of its own
named heavy-N or light-N (alternating) that burns CPU in 1 ms slices with await
asyncio.sleep(0) between: a heavy request 30 slices, a light one 10 (75 % / 25 %), each request
lives some tens of ms. After "go" runs for argv[1] CPU seconds; prints measured seconds."""
import asyncio
import time

from harness import serve_for_cpu_seconds

spent = {"heavy": 0.0, "light": 0.0}


def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def handle(kind, slices):
    for _ in range(slices):
        t = time.thread_time()
        spin(0.001)
        spent[kind] += time.thread_time() - t
        await asyncio.sleep(0)


async def serve(end):
    n = 0
    inflight = set()
    while time.thread_time() < end:
        while len(inflight) < 4:
            kind = "heavy" if n % 2 == 0 else "light"
            t = asyncio.create_task(handle(kind, 30 if kind == "heavy" else 10), name=f"{kind}-{n}")
            inflight.add(t)
            t.add_done_callback(inflight.discard)
            n += 1
        await asyncio.sleep(0)
    await asyncio.gather(*inflight)


serve_for_cpu_seconds(serve, spent)
