"""Descriptor watchers: add_reader, add_writer, remove_reader and
remove_writer on real socket pairs and pipes, each body run on the stock
loop and on aioswift's (`any_loop`)."""

import asyncio
import errno
import os
import socket

import pytest

TIMEOUT = 4.0


def run(loop, coro, timeout=TIMEOUT):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def until(predicate):
    while not predicate():
        await asyncio.sleep(0.005)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_a_reader_runs_with_its_arguments_while_there_is_data(any_loop, pair):
    loop = any_loop
    a, b = pair
    calls = []

    def readable(tag):
        calls.append((tag, a.recv(1)))

    async def main():
        assert loop.add_reader(a.fileno(), readable, "r") is None
        b.send(b"xyz")
        await until(lambda: len(calls) == 3)
        # Level-triggered: each byte was another call; none is left.
        for _ in range(3):
            await asyncio.sleep(0)

    run(loop, main())
    assert calls == [("r", b"x"), ("r", b"y"), ("r", b"z")]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False


def test_a_writer_runs_while_the_descriptor_is_writable(any_loop, pair):
    loop = any_loop
    a, b = pair
    calls = []

    def writable():
        calls.append(1)
        if len(calls) == 2:
            assert loop.remove_writer(a) is True      # from inside its own call

    async def main():
        loop.add_writer(a, writable)
        await until(lambda: len(calls) == 2)
        for _ in range(3):
            await asyncio.sleep(0)

    run(loop, main())
    assert calls == [1, 1]
    assert loop.remove_writer(a) is False


def test_adding_again_replaces_and_reader_and_writer_are_apart(any_loop, pair):
    loop = any_loop
    a, b = pair
    calls = []

    async def main():
        loop.add_reader(a, calls.append, "first")
        loop.add_reader(a, lambda: calls.append(a.recv(10)))
        loop.add_writer(a, calls.append, "w")
        b.send(b"data")
        await until(lambda: b"data" in calls and "w" in calls)
        assert loop.remove_writer(a)
        assert loop.remove_reader(a)

    run(loop, main())
    assert "first" not in calls


def test_bad_descriptors(any_loop, tmp_path):
    loop = any_loop
    with pytest.raises(ValueError, match="Invalid file object"):
        loop.add_reader("not a file", print)
    with pytest.raises(ValueError):
        loop.add_reader(-1, print)
    with pytest.raises(ValueError, match="Invalid file object"):
        loop.remove_writer(object())
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        loop.add_reader(r, print)
    assert info.value.errno == errno.EBADF
    with open(tmp_path / "regular", "w") as f:
        with pytest.raises(PermissionError):
            loop.add_reader(f, print)
    assert loop.remove_reader(r) is False


def test_a_descriptor_closed_under_its_reader(any_loop):
    loop = any_loop
    a, b = socket.socketpair()
    fd = a.fileno()
    calls = []

    async def main():
        loop.add_reader(fd, calls.append, "old")
        a.close()
        for _ in range(5):
            await asyncio.sleep(0.01)
        assert calls == []
        # Still registered, as asyncio's selector keeps its key.
        assert loop.remove_reader(fd) is True
        # The number comes back for another socket: watched anew.
        c, d = socket.socketpair()
        try:
            loop.add_reader(c.fileno(), lambda: calls.append(c.recv(10)))
            d.send(b"new")
            await until(lambda: calls)
            assert loop.remove_reader(c.fileno())
        finally:
            c.close()
            d.close()

    try:
        run(loop, main())
    finally:
        b.close()
    assert calls == [b"new"]


def test_a_descriptor_a_transport_uses_is_refused(any_loop):
    loop = any_loop
    a, b = socket.socketpair()
    r, w = os.pipe()
    rfile = open(r, "rb", buffering=0)

    async def main():
        conn, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        for fd in (a.fileno(), a):
            with pytest.raises(RuntimeError, match="is used by transport"):
                loop.add_reader(fd, print)
            with pytest.raises(RuntimeError, match="is used by transport"):
                loop.remove_writer(fd)
        # A closing transport lets go of it.
        conn.close()
        assert loop.remove_reader(a) is False
        # asyncio's pipe transports are not among the loop's transports.
        pipe, _ = await loop.connect_read_pipe(asyncio.Protocol, rfile)
        loop.add_writer(w, print)
        assert loop.remove_writer(w) is True
        pipe.close()
        await asyncio.sleep(0)

    try:
        run(loop, main())
    finally:
        os.close(w)
        b.close()


def test_a_callback_that_raises_is_reported_and_the_reader_stays(any_loop, pair):
    loop = any_loop
    a, b = pair
    errors = []
    calls = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    def readable():
        calls.append(a.recv(1))
        if len(calls) == 1:
            raise ZeroDivisionError("once")

    async def main():
        loop.add_reader(a, readable)
        b.send(b"12")
        await until(lambda: len(calls) == 2)
        assert loop.remove_reader(a)

    run(loop, main())
    assert calls == [b"1", b"2"]
    assert len(errors) == 1 and isinstance(errors[0]["exception"], ZeroDivisionError)


def test_keyboard_interrupt_in_a_reader_stops_the_loop_and_it_runs_on(any_loop, pair):
    loop = any_loop
    a, b = pair
    calls = []

    def readable():
        calls.append(a.recv(1))
        if len(calls) == 1:
            raise KeyboardInterrupt

    loop.add_reader(a, readable)
    b.send(b"ab")
    with pytest.raises(KeyboardInterrupt):
        run(loop, asyncio.sleep(TIMEOUT))
    run(loop, until(lambda: len(calls) == 2))
    assert calls == [b"a", b"b"]
    assert loop.remove_reader(a)


def test_a_closed_loop(any_loop, pair):
    loop = any_loop
    a, b = pair
    loop.add_reader(a, print)
    loop.close()
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False
    with pytest.raises(RuntimeError, match="closed"):
        loop.add_reader(a, print)
    with pytest.raises(RuntimeError, match="closed"):
        loop.add_writer(a, print)
