"""The echo benchmark of the Python loops: aioswift vs uvloop vs asyncio.

    python3 bindings/python/bench/echo_bench.py [WORD...]

The repository's echo benchmark (bench/py/echo_bench.py: bench/bin/echo_load
as the load generator, the server pinned to CPU 0 and the load to CPU 1, the
server's CPU time per message from /proc) with the Python servers of
bench/py/echo_server.py on each loop, in both styles: an asyncio.Protocol
whose data_received writes back, and asyncio streams (read, write, drain).
Raw libuv (bench/bin/echo_uv) stays as the reference the ratios start from;
the uvloop columns compare each server with uvloop in the same style.

Build first: `make bench/bin/echo_load bench/bin/echo_uv` at the top, and
`make -C bindings/python build`. The Python servers run on the interpreter
that runs this script. The knobs are bench/py/echo_bench.py's
(BENCH_ECHO_SECONDS, BENCH_ECHO_WARMUP, BENCH_ECHO_ROUNDS, BENCH_ECHO_IDLE).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "bench", "py"))

import echo_bench  # noqa: E402

PY = echo_bench.PY
echo_bench.SERVERS = [
    ("raw libuv", "transport", [os.path.join(echo_bench.BIN, "echo_uv")]),
    ("asyncio protocol", "transport", PY + ["--loop=asyncio", "--style=protocol"]),
    ("uvloop protocol", "transport", PY + ["--loop=uvloop", "--style=protocol"]),
    ("aioswift protocol", "transport", PY + ["--loop=aioswift", "--style=protocol"]),
    ("asyncio streams", "streams", PY + ["--loop=asyncio", "--style=streams"]),
    ("uvloop streams", "streams", PY + ["--loop=uvloop", "--style=streams"]),
    ("aioswift streams", "streams", PY + ["--loop=aioswift", "--style=streams"]),
]

if __name__ == "__main__":
    echo_bench.exit_on_termination()
    try:
        rc = echo_bench.main()
    finally:
        echo_bench.kill_all()
    sys.exit(rc)
