"""task_memory reference: the memory a pending asyncio task costs.

    python3 bench/py/task_memory.py N [--loop=asyncio|uvloop]

N tasks await one shared future that never completes; once all of them are
suspended on it, the growth of the memory Python allocated (tracemalloc,
started before the loop is made) is divided by N. Then every task is
cancelled and the loop runs until they all finished.
Prints: task_memory N SECONDS heap_bytes_per_task=X impl=LOOP cancel_seconds=Y
(SECONDS: creating the tasks and running them to their first await.)
"""
import asyncio
import gc
import sys
import time
import tracemalloc

from common import make_loop, parse_args


async def waiter(fut):
    try:
        await fut
    except asyncio.CancelledError:
        raise


def run(n, loop_name):
    tracemalloc.start()
    loop = make_loop(loop_name)
    try:
        never = loop.create_future()
        # Warm up the task machinery once, so that first-use allocations are
        # not charged to the measured tasks.
        warm = loop.create_task(waiter(never))
        loop.run_until_complete(asyncio.sleep(0))
        warm.cancel()
        loop.run_until_complete(asyncio.wait([warm]))
        never = loop.create_future()
        tasks = [None] * n  # the list that holds them is not counted
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        t0 = time.perf_counter()
        for i in range(n):
            tasks[i] = loop.create_task(waiter(never))
        loop.run_until_complete(asyncio.sleep(0))  # every task reaches its await
        t1 = time.perf_counter()
        after, _ = tracemalloc.get_traced_memory()
        pending = sum(1 for t in tasks if not t.done())
        if pending != n:
            sys.exit(f"task_memory: {pending} of {n} tasks pending, expected all")
        c0 = time.perf_counter()
        for t in tasks:
            t.cancel()
        loop.run_until_complete(asyncio.wait(tasks))
        c1 = time.perf_counter()
        if not all(t.cancelled() for t in tasks):
            sys.exit("task_memory: not every task ended cancelled")
    finally:
        loop.close()
        tracemalloc.stop()
    return t1 - t0, (after - before) / n, c1 - c0


if __name__ == "__main__":
    n, loop_name, _ = parse_args(sys.argv, 100_000)
    secs, per_task, cancel_secs = run(n, loop_name)
    print(f"task_memory {n} {secs:.6f} heap_bytes_per_task={per_task:.1f} impl={loop_name} "
          f"cancel_seconds={cancel_secs:.6f}")
