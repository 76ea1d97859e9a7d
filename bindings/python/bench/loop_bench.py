"""Scheduling benchmarks of aioswift against the stock loop and uvloop (when
installed), in one process, best of several rounds taken in turns; prints operations per
second and the ratio aioswift / uvloop for each row.

    python bench/loop_bench.py                 # every row
    python bench/loop_bench.py sleep0 gather   # some rows
"""

import asyncio
import contextvars
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import aioswift  # noqa: E402

try:
    import uvloop
except ImportError:
    uvloop = None

N = 100_000
ROUNDS = 7


def call_soon(loop):
    """call_soon of N callbacks, then run them."""
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count == N:
            loop.stop()

    started = time.perf_counter()
    for _ in range(N):
        loop.call_soon(cb)
    loop.run_forever()
    return N / (time.perf_counter() - started)


def call_soon_chain(loop):
    """A task's path: each callback schedules the next, call_soon(cb, context=ctx)."""
    ctx = contextvars.copy_context()
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count == N:
            loop.stop()
        else:
            loop.call_soon(cb, context=ctx)

    started = time.perf_counter()
    loop.call_soon(cb, context=ctx)
    loop.run_forever()
    return N / (time.perf_counter() - started)


def call_soon_threadsafe(loop):
    """Another thread sends N callbacks; the loop runs them."""
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count == N:
            loop.stop()

    def sender():
        for _ in range(N):
            loop.call_soon_threadsafe(cb)

    started = time.perf_counter()
    thread = threading.Thread(target=sender)
    thread.start()
    loop.run_forever()
    thread.join()
    return N / (time.perf_counter() - started)


def call_later(loop):
    """call_later of N timers over 10 deadlines, then run them."""
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count == N:
            loop.stop()

    started = time.perf_counter()
    for i in range(N):
        loop.call_later(0.0001 * (i % 10), cb)
    loop.run_forever()
    return N / (time.perf_counter() - started)


def call_later_cancel(loop):
    """call_later of a far timer and its cancel, N times (asyncio.timeout's pattern)."""
    started = time.perf_counter()
    for _ in range(N):
        loop.call_later(3600, cb_nothing).cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    return N / (time.perf_counter() - started)


def cb_nothing():
    pass


def sleep0(loop):
    """One task awaiting asyncio.sleep(0) N times."""
    async def main():
        for _ in range(N):
            await asyncio.sleep(0)

    started = time.perf_counter()
    loop.run_until_complete(main())
    return N / (time.perf_counter() - started)


def gather(loop):
    """create_task + gather of 100 trivial coroutines, N/100 times."""
    async def child():
        pass

    async def main():
        for _ in range(N // 100):
            await asyncio.gather(*[child() for _ in range(100)])

    started = time.perf_counter()
    loop.run_until_complete(main())
    return N / (time.perf_counter() - started)


def queue(loop):
    """Ping-pong through two asyncio.Queues, N/4 round trips."""
    rounds = N // 4

    async def main():
        ping, pong = asyncio.Queue(), asyncio.Queue()

        async def echo():
            for _ in range(rounds):
                await pong.put(await ping.get())

        task = asyncio.ensure_future(echo())
        for i in range(rounds):
            await ping.put(i)
            await pong.get()
        await task

    started = time.perf_counter()
    loop.run_until_complete(main())
    return rounds / (time.perf_counter() - started)


def lock(loop):
    """10 tasks contending for an asyncio.Lock, N/4 acquisitions in all."""
    total = N // 4

    async def main():
        lock = asyncio.Lock()
        left = [total]

        async def worker():
            while left[0] > 0:
                async with lock:
                    left[0] -= 1
                    await asyncio.sleep(0)

        await asyncio.gather(*[worker() for _ in range(10)])

    started = time.perf_counter()
    loop.run_until_complete(main())
    return total / (time.perf_counter() - started)


SPAWNS = 200


def subprocess_spawn(loop):
    """asyncio.create_subprocess_exec of /bin/true and its wait, SPAWNS times
    one after the other (rate: spawns per second)."""
    async def main():
        for _ in range(SPAWNS):
            proc = await asyncio.create_subprocess_exec("/bin/true")
            if await proc.wait() != 0:
                raise RuntimeError("/bin/true failed")

    started = time.perf_counter()
    loop.run_until_complete(main())
    return SPAWNS / (time.perf_counter() - started)


ROWS = [call_soon, call_soon_chain, call_soon_threadsafe, call_later, call_later_cancel,
        sleep0, gather, queue, lock, subprocess_spawn]


def main(argv):
    loops = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None:
        loops["uvloop"] = uvloop.new_event_loop
    loops["aioswift"] = aioswift.new_event_loop
    rows = [r for r in ROWS if not argv or r.__name__ in argv]
    print(f"CPython {sys.version.split()[0]}, best of {ROUNDS} rounds, thousands of ops/s")
    print(f"{'row':22}" + "".join(f"{k:>12}" for k in loops) +
          ("   aioswift/uvloop" if uvloop is not None else ""))
    for row in rows:
        best = dict.fromkeys(loops, 0.0)
        for _ in range(ROUNDS):            # the loops take turns: noise hits all
            for name, factory in loops.items():
                loop = factory()
                try:
                    best[name] = max(best[name], row(loop))
                finally:
                    loop.close()
        line = f"{row.__name__:22}" + "".join(f"{best[k] / 1e3:12.3f}" if best[k] < 1e4
                                              else f"{best[k] / 1e3:12.0f}" for k in loops)
        if uvloop is not None:
            line += f"   {best['aioswift'] / best['uvloop']:8.2f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
