"""A known asyncio task tree, parked forever: a TaskGroup (3.11+; gather before) of three
named workers: "gatherer" awaits asyncio.gather of two named sub-tasks ("sub-a", "sub-b",
each in asyncio.sleep), "consumer" is blocked on queue.get(), "sleeper" is in asyncio.sleep.
Prints "ready" once every task is parked. The lines the tests expect are marked `# L:NAME`."""
import asyncio
import sys


async def sub(n):
    await asyncio.sleep(3600 + n)  # L:sub


async def gatherer():
    a = asyncio.create_task(sub(1), name="sub-a")
    b = asyncio.create_task(sub(2), name="sub-b")
    await asyncio.gather(a, b)  # L:gatherer


async def consumer(queue):
    await queue.get()  # L:consumer


async def sleeper():
    await asyncio.sleep(3600)  # L:sleeper


async def announce():
    # Every task has run to its first await after two turns of the loop.
    for _ in range(5):
        await asyncio.sleep(0)
    print("ready", flush=True)


async def main():
    queue = asyncio.Queue()
    if sys.version_info >= (3, 11):
        async with asyncio.TaskGroup() as tg:  # L:main
            tg.create_task(gatherer(), name="gatherer")
            tg.create_task(consumer(queue), name="consumer")
            tg.create_task(sleeper(), name="sleeper")
            tg.create_task(announce(), name="announce")
    else:
        loop = asyncio.get_event_loop()
        tasks = [
            loop.create_task(gatherer()),
            loop.create_task(consumer(queue)),
            loop.create_task(sleeper()),
            loop.create_task(announce()),
        ]
        for t, name in zip(tasks, ["gatherer", "consumer", "sleeper", "announce"]):
            t.set_name(name)
        await asyncio.gather(*tasks)  # L:main-gather


asyncio.run(main())
