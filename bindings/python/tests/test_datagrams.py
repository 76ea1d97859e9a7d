"""Datagram endpoints: create_datagram_endpoint over UDP on 127.0.0.1 and ::1
and over Unix datagram sockets in a temporary directory, each body run on
the stock loop and on aioswift's (`any_loop`), with the fixtures' leak
checks."""

import asyncio
import logging
import os
import socket
import sys
import tempfile

import pytest

import aioswift
from conftest import HOSTS

TIMEOUT = 4.0
PY312 = sys.version_info >= (3, 12)


def run(loop, coro, timeout=TIMEOUT):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


@pytest.fixture
def unix_dir():
    with tempfile.TemporaryDirectory(prefix="aioswift-") as directory:
        yield directory


class Datagrams(asyncio.DatagramProtocol):
    """Keeps what comes; `done` at connection_lost."""

    def __init__(self, loop):
        self.loop = loop
        self.received = asyncio.Queue()
        self.errors = asyncio.Queue()
        self.events = []
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def datagram_received(self, data, addr):
        assert isinstance(data, bytes)
        self.received.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.put_nowait(exc)

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.done.set_result(exc)


async def get(queue):
    return await asyncio.wait_for(queue.get(), TIMEOUT)


@pytest.mark.parametrize("host", HOSTS)
def test_udp_both_ways(any_loop, host):
    loop = any_loop

    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                         local_addr=(host, 0))
        # (3.11's own is no DatagramTransport; aioswift's always is.)
        if PY312 or isinstance(loop, aioswift.Loop):
            assert isinstance(server, asyncio.DatagramTransport)
        assert isinstance(server, asyncio.Transport)       # as asyncio's is
        assert sp.events == ["made"]
        address = server.get_extra_info("sockname")
        assert address[1] != 0
        assert server.get_extra_info("peername") is None
        sock = server.get_extra_info("socket")
        assert sock.family == (socket.AF_INET6 if ":" in host else socket.AF_INET)
        assert sock.getsockname() == address
        client, cp = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                         remote_addr=address[:2])
        assert client.get_extra_info("peername")[:2] == address[:2]
        client.sendto(b"ping")
        client.sendto(bytearray(b"pi"), None)
        client.sendto(memoryview(b"ng"), address[:2] if ":" not in host else None)
        got = [await get(sp.received) for _ in range(3)]
        assert [data for data, _ in got] == [b"ping", b"pi", b"ng"]
        caddr = got[0][1]
        assert caddr == client.get_extra_info("sockname")
        server.sendto(b"pong", caddr)
        assert await get(cp.received) == (b"pong", client.get_extra_info("peername"))
        assert server.get_write_buffer_size() == 0
        client.close()
        server.close()
        assert await cp.done is None and await sp.done is None
        return server, sock

    server, sock = run(loop, main())
    assert server.is_closing()
    assert sock.fileno() == -1          # closed with the transport


def test_sendto_checks(any_loop):
    loop = any_loop

    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                         local_addr=("127.0.0.1", 0))
        address = server.get_extra_info("sockname")
        client, cp = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                         remote_addr=address)
        with pytest.raises(TypeError, match="bytes-like object"):
            client.sendto("text")
        with pytest.raises(ValueError, match="Invalid address"):
            client.sendto(b"x", ("127.0.0.1", address[1] + 1))
        # An unconnected endpoint resolves a name as socket.sendto does.
        server.sendto(b"by name", ("localhost", client.get_extra_info("sockname")[1]))
        data, _ = await get(cp.received)
        client.close()
        server.close()
        await cp.done
        await sp.done
        return data

    assert run(loop, main()) == b"by name"


def test_a_bad_address_for_sendto(any_loop):
    loop = any_loop
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    async def main():
        endpoint, protocol = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                                 local_addr=("127.0.0.1", 0))
        # An OSError of the address (a name that does not resolve) goes to
        # error_received; the endpoint stays open.
        endpoint.sendto(b"x", ("no-such-host.invalid", 9))
        assert isinstance(await get(protocol.errors), socket.gaierror)
        assert not endpoint.is_closing()
        # Any other error of the address is fatal, as with asyncio.
        endpoint.sendto(b"x", 12345)
        assert isinstance(await protocol.done, TypeError)     # connection_lost's
        return endpoint

    endpoint = run(loop, main())
    assert endpoint.is_closing()
    assert len(errors) == 1 and isinstance(errors[0]["exception"], TypeError)
    assert errors[0]["message"] == "Fatal write error on datagram transport"


def test_unix_datagrams(any_loop, unix_dir):
    loop = any_loop
    server_path = os.path.join(unix_dir, "server")
    client_path = os.path.join(unix_dir, "client")

    async def main():
        # A stale socket file is removed first.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stale.bind(server_path)
        stale.close()
        server, sp = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=server_path, family=socket.AF_UNIX)
        assert server.get_extra_info("sockname") == server_path
        client, cp = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=client_path, remote_addr=server_path,
            family=socket.AF_UNIX)
        assert client.get_extra_info("peername") == server_path
        client.sendto(b"over unix")
        assert await get(sp.received) == (b"over unix", client_path)
        server.sendto(b"reply", client_path)
        assert await get(cp.received) == (b"reply", server_path)
        # An unnamed sender has no address.
        anonymous = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        anonymous.sendto(b"who?", server_path)
        anonymous.close()
        data, addr = await get(sp.received)
        client.close()
        server.close()
        await cp.done
        await sp.done
        return data, addr

    assert run(loop, main()) == (b"who?", None)


def test_a_peer_that_goes_away(any_loop, unix_dir):
    loop = any_loop
    path = os.path.join(unix_dir, "peer")

    async def main():
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        peer.bind(path)
        endpoint, protocol = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), remote_addr=path, family=socket.AF_UNIX)
        endpoint.sendto(b"first")
        assert peer.recv(100) == b"first"
        peer.close()
        endpoint.sendto(b"nobody")
        exc = await get(protocol.errors)
        assert not endpoint.is_closing()
        endpoint.close()
        await protocol.done
        return exc

    assert isinstance(run(loop, main()), ConnectionRefusedError)


def test_an_icmp_error_on_a_connected_udp_endpoint(any_loop):
    loop = any_loop
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        nobody = s.getsockname()

    async def main():
        endpoint, protocol = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                                 remote_addr=nobody)
        endpoint.sendto(b"anyone?")
        exc = await get(protocol.errors)
        # It stays open and usable.
        endpoint.sendto(b"again")
        endpoint.close()
        await protocol.done
        return exc

    assert isinstance(run(loop, main()), ConnectionRefusedError)


def test_flow_control_of_an_endpoint(any_loop, unix_dir):
    loop = any_loop
    path = os.path.join(unix_dir, "slow")
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.bind(path)
    b.setblocking(False)
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.connect(path)

    async def main():
        endpoint, protocol = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                                 sock=a)
        # (asyncio 3.13's count keeps 8 bytes a datagram sent from its
        # buffer: a low mark of 0 would never resume it.)
        endpoint.set_write_buffer_limits(high=4096, low=1024)
        assert endpoint.get_write_buffer_limits() == (1024, 4096)
        sent = 0
        while "pause" not in protocol.events:
            endpoint.sendto(b"d" * 1024)        # nobody reads b: the buffer fills
            sent += 1
            assert sent < 10000
        assert endpoint.get_write_buffer_size() > 4096
        received = 0
        while received < sent:
            try:
                b.recv(2048)
                received += 1
            except BlockingIOError:
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        assert protocol.events == ["made", "pause", "resume"]
        endpoint.close()
        await protocol.done

    try:
        run(loop, main())
    finally:
        b.close()


def test_close_abort_and_sending_after_close(any_loop, caplog):
    loop = any_loop

    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                         local_addr=("127.0.0.1", 0))
        client, cp = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), remote_addr=server.get_extra_info("sockname"))
        client.close()
        assert client.is_closing()
        client.close()
        client.abort()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(6):
                client.sendto(b"late")          # dropped, logged from the fifth
        assert await cp.done is None
        assert cp.events == ["made", "lost"]
        server.abort()
        assert await sp.done is None
        # Nothing came: the late datagrams were dropped.
        return sp.received.qsize()

    assert run(loop, main()) == 0
    assert [r.getMessage() for r in caplog.records] == ["socket.send() raised exception."] * 2


def test_a_protocol_that_raises_is_reported_and_the_endpoint_stays(any_loop):
    loop = any_loop
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    class Fails(Datagrams):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"1":
                raise ZeroDivisionError("first")

    async def main():
        server, sp = await loop.create_datagram_endpoint(lambda: Fails(loop),
                                                         local_addr=("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"1", server.get_extra_info("sockname"))
            s.sendto(b"2", server.get_extra_info("sockname"))
            got = [(await get(sp.received))[0] for _ in range(2)]
        assert not server.is_closing()
        server.close()
        await sp.done
        return got

    assert run(loop, main()) == [b"1", b"2"]
    assert len(errors) == 1 and isinstance(errors[0]["exception"], ZeroDivisionError)


def test_asyncio_s_argument_rules(any_loop, unix_dir):
    loop = any_loop

    def create(*args, **kwargs):
        return run(loop, loop.create_datagram_endpoint(asyncio.DatagramProtocol, *args,
                                                       **kwargs))

    with pytest.raises(ValueError, match="unexpected address family"):
        create()
    with pytest.raises(TypeError):
        create(local_addr=("127.0.0.1", 0), reuse_address=True)
    with pytest.raises(TypeError, match="2-tuple is expected"):
        create(local_addr=("127.0.0.1",))
    with pytest.raises(TypeError, match="string is expected"):
        create(local_addr=("127.0.0.1", 0), family=socket.AF_UNIX)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stream:
        with pytest.raises(ValueError):
            create(sock=stream)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram:
        with pytest.raises(ValueError, match="socket modifier keyword arguments"):
            create(sock=dgram, local_addr=("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(OSError):
            create(local_addr=taken.getsockname())
    transport, _ = create(local_addr=("127.0.0.1", 0), reuse_port=True,
                          allow_broadcast=True)
    sock = transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
    transport.close()
    run(loop, asyncio.sleep(0))


def test_a_closed_loop_makes_no_endpoint(any_loop):
    loop = any_loop
    loop.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        coro = loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=sock)
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            coro.send(None)
