"""call_soon reference: N callbacks through loop.call_soon.

    python3 bench/py/call_soon.py N [--loop=asyncio|uvloop] [--chained]

Plain: N callbacks are scheduled up front, each increments a counter and the
last one stops the loop. Chained: each callback schedules the next one.
Prints one line: `call_soon N SECONDS impl=LOOP mode=plain|chained per_call_ns=X`
(the name is `call_soon_chained` for the chained variant).
The timed region covers scheduling and running all N callbacks; an untimed
warm-up round of the same size on the same loop runs first.
"""
import sys
import time

from common import make_loop, parse_args


def run_plain(loop, n):
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count == n:
            loop.stop()

    call_soon = loop.call_soon
    t0 = time.perf_counter()
    for _ in range(n):
        call_soon(cb)
    loop.run_forever()
    t1 = time.perf_counter()
    if count != n:
        sys.exit(f"call_soon: ran {count} callbacks, expected {n}")
    return t1 - t0


def run_chained(loop, n):
    count = 0
    call_soon = loop.call_soon

    def cb():
        nonlocal count
        count += 1
        if count == n:
            loop.stop()
        else:
            call_soon(cb)

    t0 = time.perf_counter()
    call_soon(cb)
    loop.run_forever()
    t1 = time.perf_counter()
    if count != n:
        sys.exit(f"call_soon_chained: ran {count} callbacks, expected {n}")
    return t1 - t0


if __name__ == "__main__":
    n, loop_name, flags = parse_args(sys.argv, 1_000_000, flags=("chained",))
    chained = "chained" in flags
    loop = make_loop(loop_name)
    try:
        bench = run_chained if chained else run_plain
        bench(loop, n)  # untimed warm-up round of the same size, as the C benchmark does
        secs = bench(loop, n)
    finally:
        loop.close()
    name = "call_soon_chained" if chained else "call_soon"
    mode = "chained" if chained else "plain"
    print(f"{name} {n} {secs:.6f} impl={loop_name} mode={mode} per_call_ns={secs / n * 1e9:.1f}")
