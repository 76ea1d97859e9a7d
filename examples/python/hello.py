#!/usr/bin/env python3
"""hello.py: libaio-swift's event loop driven from Python.

A countdown on timers, a worker thread that hands its answer back to the loop
with call_soon_threadsafe, a callback that fails (and a handler that reports
it), and a sleep whose result run_until_complete returns.

Run it after `make` and `make -C bindings/python build` in the repository:
    python3 examples/python/hello.py
or with aioswift installed (`pip install bindings/python`).
"""

import asyncio
import os
import sys
import threading
import time

try:
    import aioswift
except ImportError:  # not installed: use the in-place build of the repository
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "bindings", "python"))
    import aioswift


def main():
    loop = aioswift.Loop()
    start = loop.time()

    def say(what):
        print(f"[{loop.time() - start:5.3f}s] {what}")

    def report(loop, context):
        say(f"handler: {context['message']} -> {context['exception']!r}")

    loop.set_exception_handler(report)
    say(f"libaio-swift {aioswift.version()}")

    # A countdown on timers: they run in deadline order, not in the order
    # they were scheduled.
    for n in (3, 1, 2):
        loop.call_later(0.1 * (4 - n), say, f"countdown {n}")

    # A timer that is cancelled never runs.
    loop.call_later(0.15, say, "never printed").cancel()

    # A worker thread: the only thread-safe way in is call_soon_threadsafe.
    def worker():
        answer = sum(i * i for i in range(1, 25))
        time.sleep(0.05)
        loop.call_soon_threadsafe(say, f"worker thread says sum of squares 1..24 = {answer}")

    thread = threading.Thread(target=worker)
    thread.start()

    # A callback that raises: the loop reports it and goes on.
    def broken():
        raise ValueError("a callback failed")

    loop.call_soon(broken)

    # A C future holding a Python object; the loop runs until it is done.
    result = loop.run_until_complete(loop.sleep(0.35, {"greeting": "hello from Swift"}))
    say(f"sleep gave back {result}")

    # A sleep cancelled by a timer.
    doomed = loop.sleep(10, "too late")
    loop.call_later(0.05, doomed.cancel, "changed my mind")
    try:
        loop.run_until_complete(doomed)
    except asyncio.CancelledError as exc:
        say(f"the long sleep was cancelled: {exc.args[0]!r}")

    thread.join()
    loop.close()
    print("closed")


if __name__ == "__main__":
    main()
