"""Tasks that change while they are read: N/10 "mid-I" tasks each gathering nine "leaf-I-J"
tasks asleep (a known, steady part), and a "spin" task that makes and ends fifty tasks per turn
of the loop. Prints "ready" once the steady part is parked. Usage: task_churn.py N"""
import asyncio
import sys

N = int(sys.argv[1])


async def leaf():
    await asyncio.sleep(3600)


async def mid(i):
    await asyncio.gather(*(asyncio.create_task(leaf(), name=f"leaf-{i}-{j}") for j in range(9)))


async def spin():
    while True:
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(50)))


async def main():
    ts = [asyncio.create_task(mid(i), name=f"mid-{i}") for i in range(N // 10)]
    asyncio.create_task(spin(), name="spin")
    for _ in range(5):
        await asyncio.sleep(0)
    print("ready", flush=True)
    await asyncio.gather(*ts)


asyncio.run(main())
