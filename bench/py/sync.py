"""Synchronization primitives and queues: the asyncio references of bench/c/sync.c.

    python3 bench/py/sync.py queue_pingpong N [--loop=asyncio|uvloop]
    python3 bench/py/sync.py lock_contention TASKS ITERS [--loop=...]
    python3 bench/py/sync.py event_fanout TASKS ROUNDS [--loop=...]

queue_pingpong: tasks ping and pong, two unbounded asyncio.Queue. N times,
  ping does `await q1.put(i)` and `await q2.get()` (checked to be i), pong
  does `await q2.put(await q1.get())`. Timed: creating the queues and the two
  tasks, running both to completion (main awaits ping, then pong).
lock_contention: TASKS tasks share one asyncio.Lock; each does ITERS times
  `async with lock: await asyncio.sleep(0)`. The lock is held across the
  yield, so the others queue on it and almost every acquire waits. Timed:
  creating the lock and the tasks, running all to completion (main awaits
  each in turn). Checked: never two holders, TASKS * ITERS sections, unlocked.
event_fanout: each round, TASKS tasks `await event.wait()`; once all wait,
  main calls event.set() and awaits a second Event that the last woken task
  sets. Timed: from set() to main resuming, summed over ROUNDS rounds
  (n = TASKS * ROUNDS wake-ups); setup (creating the tasks, running them to
  their wait) is reported apart as setup_seconds.

Each runs one untimed warm-up (of the same size; one round for event_fanout)
and then the timed run, both with run_until_complete on one loop, as the C
benchmark runs its main task twice on one aios_runner.
Prints one line `name n seconds key=value...` like bench/c/sync.c.
"""
import asyncio
import sys
import time

from common import Failed, run_named




# ------------------------------------------------------------ queue_pingpong

async def pingpong_main(n):
    t0 = time.perf_counter()
    q1, q2 = asyncio.Queue(), asyncio.Queue()

    async def ping():
        for i in range(n):
            await q1.put(i)
            reply = await q2.get()
            if reply != i:
                raise Failed(f"ping {i} got the reply {reply}")
        return n

    async def pong():
        for i in range(n):
            item = await q1.get()
            if item != i:
                raise Failed(f"pong {i} got {item}")
            await q2.put(item)
        return n

    ping_task = asyncio.create_task(ping())
    pong_task = asyncio.create_task(pong())
    if await ping_task != n or await pong_task != n:
        raise Failed("a side finished with a wrong count")
    t1 = time.perf_counter()
    if q1.qsize() or q2.qsize():
        raise Failed(f"queues hold {q1.qsize()} and {q2.qsize()} items at the end")
    return t1 - t0


def queue_pingpong(loop, n):
    loop.run_until_complete(pingpong_main(n))  # untimed warm-up of the same size
    secs = loop.run_until_complete(pingpong_main(n))
    return f"queue_pingpong {n} {secs:.6f} per_roundtrip_ns={secs / n * 1e9:.1f}"


# ----------------------------------------------------------- lock_contention

async def lock_main(tasks, iters):
    t0 = time.perf_counter()
    lock = asyncio.Lock()
    state = {"holder": None, "sections": 0}

    async def worker(me):
        for _ in range(iters):
            async with lock:
                if state["holder"] is not None:
                    raise Failed(f"worker {me} acquired the lock while {state['holder']} holds it")
                state["holder"] = me
                await asyncio.sleep(0)
                if state["holder"] != me:
                    raise Failed(f"worker {me} releases a lock held by {state['holder']}")
                state["holder"] = None
                state["sections"] += 1
        return iters

    workers = [asyncio.create_task(worker(i)) for i in range(tasks)]
    for i, w in enumerate(workers):
        if await w != iters:
            raise Failed(f"worker {i} finished with a wrong count")
    t1 = time.perf_counter()
    if state["sections"] != tasks * iters:
        raise Failed(f"{state['sections']} critical sections, expected {tasks * iters}")
    if lock.locked():
        raise Failed("the lock is still locked at the end")
    return t1 - t0


def lock_contention(loop, tasks, iters):
    loop.run_until_complete(lock_main(tasks, iters))  # untimed warm-up of the same size
    secs = loop.run_until_complete(lock_main(tasks, iters))
    n = tasks * iters
    return (f"lock_contention {n} {secs:.6f} tasks={tasks} iters={iters} "
            f"per_op_ns={secs / n * 1e9:.1f}")


# -------------------------------------------------------------- event_fanout

async def fanout_main(tasks, rounds):
    timed = setup = 0.0
    for _ in range(rounds):
        s0 = time.perf_counter()
        event, all_done = asyncio.Event(), asyncio.Event()
        count = {"started": 0, "finished": 0}

        async def waiter():
            count["started"] += 1
            await event.wait()
            count["finished"] += 1
            if count["finished"] == tasks:
                all_done.set()

        waiters = [asyncio.create_task(waiter()) for _ in range(tasks)]
        while count["started"] < tasks:
            await asyncio.sleep(0)
        if count["finished"]:
            raise Failed(f"{count['finished']} tasks finished before the event was set")
        setup += time.perf_counter() - s0
        t0 = time.perf_counter()
        event.set()
        await all_done.wait()
        timed += time.perf_counter() - t0
        if count["finished"] != tasks:
            raise Failed(f"{count['finished']} of {tasks} tasks woke up")
        for i, w in enumerate(waiters):
            if not w.done() or w.result() is not None:
                raise Failed(f"task {i} not done once all woke")
    return timed, setup


def event_fanout(loop, tasks, rounds):
    loop.run_until_complete(fanout_main(tasks, 1))  # one untimed warm-up round
    secs, setup = loop.run_until_complete(fanout_main(tasks, rounds))
    n = tasks * rounds
    return (f"event_fanout {n} {secs:.6f} tasks={tasks} rounds={rounds} "
            f"setup_seconds={setup:.6f} per_wakeup_ns={secs / n * 1e9:.1f}")


# ---------------------------------------------------------------------- main

BENCHES = {
    # name: (function, defaults of its counts)
    "queue_pingpong": (queue_pingpong, (100_000,)),
    "lock_contention": (lock_contention, (100, 1000)),
    "event_fanout": (event_fanout, (10_000, 10)),
}


def main(argv):
    usage = (f"usage: {argv[0]} queue_pingpong N | lock_contention TASKS ITERS | "
             "event_fanout TASKS ROUNDS  [--loop=asyncio|uvloop]")
    run_named(argv, BENCHES, usage)


if __name__ == "__main__":
    main(sys.argv)
