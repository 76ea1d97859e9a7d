"""spawn reference: N trivial tasks created and gathered.

    python3 bench/py/spawn.py N [--loop=asyncio|uvloop]

prints one line: `spawn N SECONDS impl=LOOP per_task_ns=X`.
The timed region is one run_until_complete of a coroutine that does
`await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(N)])`;
the loop is created before and closed after it, and an untimed warm-up
round of the same size runs on it first.
"""
import asyncio
import sys
import time

from common import make_loop, parse_args


async def noop():
    pass


async def main(n):
    await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(n)])


def run(n, loop_name):
    loop = make_loop(loop_name)
    try:
        loop.run_until_complete(main(n))  # untimed warm-up round, as the C benchmark does
        t0 = time.perf_counter()
        loop.run_until_complete(main(n))
        t1 = time.perf_counter()
    finally:
        loop.close()
    return t1 - t0


if __name__ == "__main__":
    n, loop_name, _ = parse_args(sys.argv, 1_000_000)
    secs = run(n, loop_name)
    print(f"spawn {n} {secs:.6f} impl={loop_name} per_task_ns={secs / n * 1e9:.1f}")
