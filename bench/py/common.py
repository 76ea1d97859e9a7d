"""Shared helpers of the Python reference benchmarks (bench/py/*.py)."""
import asyncio
import sys


def make_loop(name):
    """A fresh event loop of the named implementation: 'asyncio' or 'uvloop'."""
    if name == "asyncio":
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop  # imported only when asked for, so asyncio runs without it
        return uvloop.new_event_loop()
    sys.exit(f"unknown loop implementation: {name!r} (want asyncio or uvloop)")


def parse_args(argv, default_n, flags=()):
    """argv: N [--loop=asyncio|uvloop] [flags...]. Returns (n, loop_name, set_of_flags)."""
    n = default_n
    loop_name = "asyncio"
    seen = set()
    for a in argv[1:]:
        if a.startswith("--loop="):
            loop_name = a.split("=", 1)[1]
        elif a.startswith("--") and a[2:] in flags:
            seen.add(a[2:])
        elif a.isdigit():
            n = int(a)
        else:
            sys.exit(f"usage: {argv[0]} N [--loop=asyncio|uvloop]"
                     + "".join(f" [--{f}]" for f in flags))
    if n <= 0:
        sys.exit("N must be positive")
    return n, loop_name, seen


class Failed(Exception):
    """A check of a benchmark's outcome did not hold."""


def run_named(argv, benches, usage):
    """Runs one of `benches` ({name: (function, default counts)}) as the
    command line asks: NAME [COUNT...] [--loop=asyncio|uvloop]; prints the
    function's line with the implementation's name."""
    loop_name = "asyncio"
    words = []
    for a in argv[1:]:
        if a.startswith("--loop="):
            loop_name = a.split("=", 1)[1]
        else:
            words.append(a)
    if not words or words[0] not in benches:
        sys.exit(usage)
    bench, defaults = benches[words[0]]
    counts = words[1:]
    if len(counts) > len(defaults) or not all(c.isdigit() and int(c) > 0 for c in counts):
        sys.exit(usage)
    args = [int(c) for c in counts] + list(defaults[len(counts):])
    loop = make_loop(loop_name)
    try:
        line = bench(loop, *args)
    except Failed as e:
        sys.exit(f"{words[0]}: {e}")
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    print(f"{line} impl={loop_name}")
