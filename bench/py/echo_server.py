"""The echo server of the echo benchmark in Python (bench/py/echo_bench.py).

    python3 bench/py/echo_server.py [--loop=asyncio|uvloop|aioswift] [--style=streams|protocol] PORT

Listens on 127.0.0.1:PORT and writes back whatever a connection sends, until
SIGTERM or SIGINT; then closes the listener and every connection.

- streams:  asyncio.start_server; each connection is a task looping over
            `data = await reader.read(65536)`, `writer.write(data)`,
            `await writer.drain()`.
- protocol: an asyncio.Protocol whose data_received writes the data back
            through its transport.

TCP_NODELAY is set by asyncio (and uvloop) on every TCP connection already.
The backlog is 1024, as in bench/c/echo_uv.c.
Exit status 77 (skip) when --loop=uvloop and uvloop cannot be imported, or
--loop=aioswift and the Python binding (bindings/python, built in place with
`make -C bindings/python build`) cannot be.
"""
import argparse
import asyncio
import os
import signal
import sys

BACKLOG = 1024


class EchoProtocol(asyncio.Protocol):
    def __init__(self, transports):
        self.transports = transports
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.transports.add(transport)

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.transports.discard(self.transport)


async def serve(port, style):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # Open connections, closed at the end: Server.close() closes the
    # listener only.
    transports = set()
    writers = set()

    async def handle(reader, writer):
        writers.add(writer)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass  # the client reset: nothing to echo to
        finally:
            writers.discard(writer)
            writer.close()

    if style == "streams":
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=BACKLOG)
    else:
        server = await loop.create_server(lambda: EchoProtocol(transports),
                                          "127.0.0.1", port, backlog=BACKLOG)
    await stop.wait()
    server.close()
    for t in list(transports):
        t.close()
    for w in list(writers):
        w.close()
    await server.wait_closed()
    # Let the connections' close callbacks and the handlers' tasks finish.
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def main():
    parser = argparse.ArgumentParser(description="echo server for bench/py/echo_bench.py")
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "aioswift"), default="asyncio")
    parser.add_argument("--style", choices=("streams", "protocol"), default="streams")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError as e:
            print(f"echo_server: uvloop cannot be imported: {e}", file=sys.stderr)
            sys.exit(77)
        loop = uvloop.new_event_loop()
    elif args.loop == "aioswift":
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        sys.path.insert(0, os.path.join(root, "bindings", "python"))
        try:
            import aioswift
        except ImportError as e:
            print(f"echo_server: aioswift cannot be imported: {e}", file=sys.stderr)
            sys.exit(77)
        loop = aioswift.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(serve(args.port, args.style))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
