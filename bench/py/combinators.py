"""Task combinators: the asyncio references of bench/c/combinators.c.

    python3 bench/py/combinators.py gather N [--loop=asyncio|uvloop]
    python3 bench/py/combinators.py taskgroup N [--loop=...]
    python3 bench/py/combinators.py wait_for N [--loop=...]
    python3 bench/py/combinators.py to_thread N [CALLERS] [--loop=...]

gather: `await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(N)])`.
  Timed: creating the tasks, the gather, running all to completion. Checked:
  N results, all None, and no task but main left pending.
taskgroup: `async with asyncio.TaskGroup() as tg: for _ in range(N):
  tg.create_task(noop())`. Timed: creating the group and the tasks, running
  them and leaving the group. Checked: no task but main left pending.
wait_for: one future, done before the clock starts (set_result(42)); N times
  `await asyncio.wait_for(fut, 10)`, each checked to give 42.
to_thread: CALLERS tasks (default 1), each awaiting `asyncio.to_thread(work, i)`
  one call after the other, N calls in all (work returns i, which is
  checked). Timed: creating the callers and running them to completion.

Each runs one untimed warm-up of the same size (which also starts the
default executor's threads) and then the timed run, both with
run_until_complete on one loop, as the C benchmark runs its main task twice
on one aios_runner. Prints one line `name n seconds key=value...` like
bench/c/combinators.c.
"""
import asyncio
import sys
import time

from common import Failed, run_named




async def noop():
    pass


def check_only_main_left():
    left = asyncio.all_tasks()
    if left != {asyncio.current_task()}:
        raise Failed(f"{len(left) - 1} tasks besides main are still pending")


# -------------------------------------------------------------------- gather

async def gather_main(n):
    t0 = time.perf_counter()
    results = await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(n)])
    t1 = time.perf_counter()
    if len(results) != n or any(r is not None for r in results):
        raise Failed(f"gather gave {len(results)} results, or one not None")
    check_only_main_left()
    return t1 - t0


def gather(loop, n):
    loop.run_until_complete(gather_main(n))  # untimed warm-up of the same size
    secs = loop.run_until_complete(gather_main(n))
    return f"gather {n} {secs:.6f} per_task_ns={secs / n * 1e9:.1f}"


# ----------------------------------------------------------------- taskgroup

async def taskgroup_main(n):
    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(noop())
    t1 = time.perf_counter()
    check_only_main_left()
    return t1 - t0


def taskgroup(loop, n):
    loop.run_until_complete(taskgroup_main(n))  # untimed warm-up of the same size
    secs = loop.run_until_complete(taskgroup_main(n))
    return f"taskgroup {n} {secs:.6f} per_task_ns={secs / n * 1e9:.1f}"


# ------------------------------------------------------------------ wait_for

async def wait_for_main(n):
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(42)
    t0 = time.perf_counter()
    for i in range(n):
        value = await asyncio.wait_for(fut, 10)
        if value != 42:
            raise Failed(f"wait_for {i} gave {value!r}")
    t1 = time.perf_counter()
    check_only_main_left()
    return t1 - t0


def wait_for(loop, n):
    loop.run_until_complete(wait_for_main(n))  # untimed warm-up of the same size
    secs = loop.run_until_complete(wait_for_main(n))
    return f"wait_for {n} {secs:.6f} per_call_ns={secs / n * 1e9:.1f}"


# ----------------------------------------------------------------- to_thread

def work(i):
    return i


async def to_thread_main(n, callers):
    t0 = time.perf_counter()

    async def caller(first, count):
        for i in range(first, first + count):
            value = await asyncio.to_thread(work, i)
            if value != i:
                raise Failed(f"to_thread({i}) gave {value!r}")
        return count

    # n calls split over the callers, the first ones taking the remainder
    share, extra = divmod(n, callers)
    tasks, first = [], 0
    for c in range(callers):
        count = share + (c < extra)
        tasks.append(asyncio.create_task(caller(first, count)))
        first += count
    done = 0
    for t in tasks:
        done += await t
    t1 = time.perf_counter()
    if done != n:
        raise Failed(f"{done} of {n} calls made")
    return t1 - t0


def to_thread(loop, n, callers):
    if callers > n:
        raise Failed(f"{callers} callers for {n} calls")
    loop.run_until_complete(to_thread_main(n, callers))  # untimed warm-up of the same size
    secs = loop.run_until_complete(to_thread_main(n, callers))
    return f"to_thread {n} {secs:.6f} callers={callers} per_roundtrip_ns={secs / n * 1e9:.1f}"


# ---------------------------------------------------------------------- main

BENCHES = {
    # name: (function, defaults of its counts)
    "gather": (gather, (100_000,)),
    "taskgroup": (taskgroup, (100_000,)),
    "wait_for": (wait_for, (100_000,)),
    "to_thread": (to_thread, (10_000, 1)),
}


def main(argv):
    usage = (f"usage: {argv[0]} gather N | taskgroup N | wait_for N | to_thread N [CALLERS]"
             "  [--loop=asyncio|uvloop]")
    run_named(argv, BENCHES, usage)


if __name__ == "__main__":
    main(sys.argv)
