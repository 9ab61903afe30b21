"""A live aiohttp service (aiohttp from PyPI, nobody here wrote it) with requests stuck on
purpose: GET /fast answers at once; GET /stuck/N awaits a backend that never answers
(wait_for_backend, an Event never set). Serves on the loopback port given as its argument;
prints "ready" once it listens, and serves until killed.
The lines the tests expect are marked `# L:NAME`."""
import asyncio
import sys

from aiohttp import web

never = asyncio.Event()


async def fast(request):
    await asyncio.sleep(0)
    return web.Response(text="ok\n")


async def wait_for_backend(n):
    await never.wait()  # L:backend


async def stuck(request):
    await wait_for_backend(int(request.match_info["n"]))  # L:stuck
    return web.Response(text="never\n")


async def main():
    app = web.Application()
    app.add_routes([web.get("/fast", fast), web.get("/stuck/{n}", stuck)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
