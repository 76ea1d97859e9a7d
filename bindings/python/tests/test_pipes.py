"""Pipe transports: connect_read_pipe and connect_write_pipe on real pipes
(os.pipe), each body run on the stock loop and on aioswift's (`any_loop`),
with the fixtures' leak checks."""

import asyncio
import errno
import logging
import os
import socket

import pytest

TIMEOUT = 4.0


def run(loop, coro, timeout=TIMEOUT):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class Reader(asyncio.Protocol):
    """Keeps what it reads and the order of its calls; `done` gets the
    exception connection_lost was called with."""

    def __init__(self, loop):
        self.loop = loop
        self.events = []
        self.data = bytearray()
        self.done = loop.create_future()
        self.got = asyncio.Event()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        assert isinstance(data, bytes)
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self.got.set()

    def eof_received(self):
        self.events.append("eof")
        return True         # asyncio's read pipe closes anyway

    def connection_lost(self, exc):
        self.events.append("lost")
        self.done.set_result(exc)


class Writer(asyncio.BaseProtocol):
    def __init__(self, loop):
        self.events = []
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.done.set_result(exc)


@pytest.fixture
def pipe():
    r, w = os.pipe()
    rfile, wfile = open(r, "rb", buffering=0), open(w, "wb", buffering=0)
    yield rfile, wfile
    rfile.close()
    wfile.close()


def test_a_read_pipe_reads_to_eof_then_closes_its_pipe(any_loop, pipe):
    rfile, wfile = pipe
    loop = any_loop

    async def main():
        transport, protocol = await loop.connect_read_pipe(lambda: Reader(loop), rfile)
        assert isinstance(transport, asyncio.ReadTransport)
        assert not isinstance(transport, asyncio.WriteTransport)
        assert not hasattr(transport, "write")
        assert transport.get_extra_info("pipe") is rfile
        assert transport.get_protocol() is protocol
        assert transport.is_reading() and not transport.is_closing()
        wfile.write(b"hello ")
        await protocol.got.wait()
        wfile.write(b"world")
        wfile.close()
        exc = await protocol.done
        return transport, protocol, exc

    transport, protocol, exc = run(loop, main())
    assert exc is None
    assert bytes(protocol.data) == b"hello world"
    # eof_received's answer does not keep a read pipe open.
    assert protocol.events == ["made", "data", "eof", "lost"]
    assert transport.is_closing()
    assert rfile.closed
    assert "closed" in repr(transport)


def test_a_write_pipe_writes_and_its_close_is_an_eof(any_loop, pipe):
    rfile, wfile = pipe
    loop = any_loop

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Writer(loop), wfile)
        assert isinstance(transport, asyncio.WriteTransport)
        assert transport.get_extra_info("pipe") is wfile
        assert transport.can_write_eof()
        transport.write(b"one ")
        transport.write(bytearray(b"two "))
        transport.writelines([b"three ", memoryview(b"four")])
        transport.write(b"")
        transport.close()
        assert transport.is_closing()
        transport.close()                       # twice is nothing
        exc = await protocol.done
        return transport, protocol, exc

    transport, protocol, exc = run(loop, main())
    assert exc is None
    assert protocol.events == ["made", "lost"]
    assert wfile.closed
    assert rfile.read() == b"one two three four"
    assert rfile.read() == b""                  # EOF: no writer is left


def test_writes_after_close_are_dropped_and_logged_from_the_fifth(any_loop, pipe, caplog):
    rfile, wfile = pipe
    loop = any_loop

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Writer(loop), wfile)
        transport.write_eof()
        assert transport.is_closing()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(4):
                transport.write(b"late")
            assert not caplog.records
            for _ in range(3):
                transport.write(b"late")
        await protocol.done

    run(loop, main())
    assert [r.getMessage() for r in caplog.records] == \
        ["pipe closed by peer or os.write(pipe, data) raised exception."] * 2
    assert rfile.read() == b""


def test_a_write_pipe_whose_reader_goes_away_is_lost(any_loop, pipe):
    rfile, wfile = pipe
    loop = any_loop

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Writer(loop), wfile)
        rfile.close()
        return await protocol.done

    # Nothing was buffered: connection_lost(None), as asyncio's.
    assert run(loop, main()) is None


def test_a_write_to_a_pipe_nobody_reads_is_broken_pipe(any_loop, pipe):
    rfile, wfile = pipe
    loop = any_loop

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Writer(loop), wfile)
        rfile.close()
        transport.write(b"x" * 100)
        return await protocol.done

    assert isinstance(run(loop, main()), BrokenPipeError)


def test_pause_reading_holds_the_bytes_back(any_loop, pipe):
    rfile, wfile = pipe
    loop = any_loop

    async def main():
        transport, protocol = await loop.connect_read_pipe(lambda: Reader(loop), rfile)
        transport.pause_reading()
        assert not transport.is_reading()
        transport.pause_reading()               # twice is nothing
        wfile.write(b"held")
        for _ in range(5):
            await asyncio.sleep(0)
        assert protocol.data == b""
        transport.resume_reading()
        assert transport.is_reading()
        await protocol.got.wait()
        assert protocol.data == b"held"
        transport.close()
        transport.close()
        await protocol.done

    run(loop, main())


def test_flow_control_of_a_write_pipe(any_loop, pipe):
    rfile, wfile = pipe
    loop = any_loop

    async def main():
        transport, writer = await loop.connect_write_pipe(lambda: Writer(loop), wfile)
        transport.set_write_buffer_limits(high=1024, low=256)
        assert transport.get_write_buffer_limits() == (256, 1024)
        chunk = b"x" * 65536
        total = 0
        while "pause" not in writer.events:
            transport.write(chunk)
            total += len(chunk)
        assert transport.get_write_buffer_size() > 1024
        # Reading the other end lets it drain.
        _, reader = await loop.connect_read_pipe(lambda: Reader(loop), rfile)
        while len(reader.data) < total:
            reader.got.clear()
            await reader.got.wait()
        assert writer.events == ["made", "pause", "resume"]
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await writer.done
        await reader.done
        return total, len(reader.data)

    total, read = run(loop, main())
    assert read == total


def test_abort_drops_the_buffer(any_loop, pipe):
    rfile, wfile = pipe
    loop = any_loop

    async def main():
        transport, protocol = await loop.connect_write_pipe(lambda: Writer(loop), wfile)
        transport.set_write_buffer_limits(high=1 << 20)
        for _ in range(64):                     # until the pipe is full
            transport.write(b"y" * 65536)
            if transport.get_write_buffer_size() > 0:
                break
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        transport.abort()
        transport.close()
        exc = await protocol.done
        assert protocol.events.count("lost") == 1
        return exc

    assert run(loop, main()) is None
    assert wfile.closed


def test_regular_files_are_refused(any_loop, tmp_path):
    loop = any_loop
    path = tmp_path / "file"
    path.write_bytes(b"data")
    with open(path, "rb") as f:
        with pytest.raises(ValueError, match=r"^Pipe transport is for pipes/sockets only\.$"):
            run(loop, loop.connect_read_pipe(asyncio.Protocol, f))
        assert not f.closed
    with open(path, "wb") as f:
        with pytest.raises(ValueError, match="^Pipe transport is only for pipes, sockets and "
                                             "character devices$"):
            run(loop, loop.connect_write_pipe(asyncio.BaseProtocol, f))
        assert not f.closed


def test_a_socket_is_a_pipe_too(any_loop):
    loop = any_loop
    a, b = socket.socketpair()
    with a, b:
        afile = a.makefile("rb", buffering=0)

        async def main():
            transport, protocol = await loop.connect_read_pipe(lambda: Reader(loop), afile)
            b.sendall(b"over a socket")
            b.shutdown(socket.SHUT_WR)
            await protocol.done
            return protocol.data

        assert run(loop, main()) == b"over a socket"
        assert afile.closed


def test_data_received_that_raises_is_reported_and_the_pipe_reads_on(any_loop, pipe):
    rfile, wfile = pipe
    loop = any_loop
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    class Fails(Reader):
        def data_received(self, data):
            super().data_received(data)
            if len(self.data) == 1:
                raise ZeroDivisionError("first")

    async def main():
        transport, protocol = await loop.connect_read_pipe(lambda: Fails(loop), rfile)
        wfile.write(b"a")
        await protocol.got.wait()
        protocol.got.clear()
        for _ in range(3):
            await asyncio.sleep(0)
        assert not transport.is_closing()
        wfile.write(b"b")
        await protocol.got.wait()
        wfile.close()
        return await protocol.done

    assert run(loop, main()) is None
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], ZeroDivisionError)


def test_a_closed_loop_refuses_pipes(any_loop, pipe):
    rfile, wfile = pipe
    loop = any_loop
    loop.close()
    made = []
    coro = loop.connect_read_pipe(lambda: made.append(1) or asyncio.Protocol(), rfile)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        coro.send(None)
    assert made == [1]          # the protocol is made first, as asyncio does


def test_a_pty_whose_other_side_closes_ends_quietly(any_loop):
    loop = any_loop
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    master, slave = os.openpty()
    mfile = open(master, "rb", buffering=0)

    async def main():
        transport, protocol = await loop.connect_read_pipe(lambda: Reader(loop), mfile)
        os.write(slave, b"tty line\n")
        await protocol.got.wait()
        os.close(slave)
        return await protocol.done, protocol

    exc, protocol = run(loop, main())
    # EIO: no report (asyncio logs it in debug mode only).
    assert isinstance(exc, OSError) and exc.errno == errno.EIO
    assert errors == []
    assert b"tty line" in bytes(protocol.data)
    assert mfile.closed
