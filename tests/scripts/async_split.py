"""An asyncio workload with a known split between two coroutine handlers: task "main" awaits
task "server", whose TaskGroup (a gather before 3.11) runs a task "heavy" and a task "light";
each burns CPU in slices (heavy 3 ms, light 1 ms on average: 75 % / 25 %) with
`await asyncio.sleep(0)` between, so the event loop runs them in turns, and times its slices
by its own clock (time.thread_time). After "go" on stdin it runs for argv[1] seconds of CPU
time (default 3), then prints the measured seconds as JSON. Slice lengths vary at random around
the means, so that no fixed cycle aliases with the sampling period."""
import asyncio
import random
import time

from harness import serve_for_cpu_seconds, spin

spent = {"heavy": 0.0, "light": 0.0}


async def heavy_slice(rng):
    t = time.thread_time()
    spin(rng.uniform(0.0002, 0.0058))
    spent["heavy"] += time.thread_time() - t
    await asyncio.sleep(0)


async def light_slice(rng):
    t = time.thread_time()
    spin(rng.uniform(0.0001, 0.0019))
    spent["light"] += time.thread_time() - t
    await asyncio.sleep(0)


async def handle_heavy(end):
    rng = random.Random(7)
    while time.thread_time() < end:
        await heavy_slice(rng)


async def handle_light(end):
    rng = random.Random(8)
    while time.thread_time() < end:
        await light_slice(rng)


async def serve(end):
    if hasattr(asyncio, "TaskGroup"):
        async with asyncio.TaskGroup() as g:
            g.create_task(handle_heavy(end), name="heavy")
            g.create_task(handle_light(end), name="light")
    else:
        await asyncio.gather(
            asyncio.ensure_future(handle_heavy(end)),
            asyncio.ensure_future(handle_light(end)),
        )


serve_for_cpu_seconds(serve, spent)
