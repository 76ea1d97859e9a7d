"""The sock_* methods and sendfile, each test body run on the stock loop and
on aioswift's (`any_loop`), with real sockets: Unix socket pairs, TCP and UDP
on 127.0.0.1 and ::1 when the machine has it, and files in a temp dir.
Where aioswift does better than asyncio (several readers on one socket are
served in order), the test runs on aioswift's loop only (`aloop`)."""

import asyncio
import os
import socket
import tempfile

import pytest

from conftest import HOSTS

TIMEOUT = 5.0




def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def read_all(loop, sock):
    data = bytearray()
    while True:
        piece = await loop.sock_recv(sock, 1 << 16)
        if not piece:
            return bytes(data)
        data += piece


def test_recv_and_sendall(any_loop):
    loop = any_loop
    a, b = pair()
    with a, b:
        async def main():
            reading = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0)
            assert not reading.done()
            await loop.sock_sendall(b, b"hello")
            assert await reading == b"hello"
            # recv_into, bytearray and memoryview.
            await loop.sock_sendall(b, memoryview(b"abcdef")[1:4])
            buffer = bytearray(10)
            n = await loop.sock_recv_into(a, buffer)
            assert buffer[:n] == b"bcd"
            # More than the socket buffer: sendall waits for the reader.
            big = os.urandom(4 << 20)
            sending = asyncio.ensure_future(loop.sock_sendall(b, big))
            received = bytearray()
            while len(received) < len(big):
                received += await loop.sock_recv(a, 1 << 16)
            await sending
            assert received == big
            b.shutdown(socket.SHUT_WR)
            assert await loop.sock_recv(a, 10) == b""

        run(loop, main())


def test_cancelled_recv_loses_nothing(any_loop):
    loop = any_loop
    a, b = pair()
    with a, b:
        async def main():
            buffer = bytearray(b"-" * 8)
            reading = asyncio.ensure_future(loop.sock_recv_into(a, buffer))
            await asyncio.sleep(0)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            b.send(b"kept")
            assert await loop.sock_recv(a, 10) == b"kept"
            assert buffer == b"-" * 8

        run(loop, main())


def test_readers_served_in_order(aloop):
    loop = aloop
    a, b = pair()
    with a, b:
        async def main():
            readers = [asyncio.ensure_future(loop.sock_recv(a, n)) for n in (1, 2, 3)]
            await asyncio.sleep(0)
            b.send(b"abcdef")
            assert [await r for r in readers] == [b"a", b"bc", b"def"]

        run(loop, main())


@pytest.mark.parametrize("host", HOSTS)
def test_datagrams(any_loop, host):
    loop = any_loop
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_DGRAM)
    client = socket.socket(family, socket.SOCK_DGRAM)
    with server, client:
        server.bind((host, 0))
        client.bind((host, 0))
        server.setblocking(False)
        client.setblocking(False)

        async def main():
            receiving = asyncio.ensure_future(loop.sock_recvfrom(server, 100))
            await asyncio.sleep(0)
            assert await loop.sock_sendto(client, b"ping", server.getsockname()) == 4
            data, address = await receiving
            assert data == b"ping"
            assert address == client.getsockname()
            await loop.sock_sendto(client, b"datagram", server.getsockname())
            buffer = bytearray(4)
            n, address = await loop.sock_recvfrom_into(server, buffer)
            assert (n, bytes(buffer)) == (4, b"data")
            assert address == client.getsockname()
            with pytest.raises(ValueError):
                await loop.sock_recvfrom_into(server, buffer, 5)

        run(loop, main())


def test_unix_datagrams(any_loop):
    loop = any_loop
    with tempfile.TemporaryDirectory(prefix="aioswift-") as directory:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with server, client:
            server_path = os.path.join(directory, "server")
            client_path = os.path.join(directory, "client")
            server.bind(server_path)
            client.bind(client_path)
            server.setblocking(False)
            client.setblocking(False)

            async def main():
                await loop.sock_sendto(client, b"unix", server_path)
                assert await loop.sock_recvfrom(server, 100) == (b"unix", client_path)

            run(loop, main())


@pytest.mark.parametrize("host", HOSTS)
def test_connect_accept_and_refused(any_loop, host):
    loop = any_loop
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family)
    client = socket.socket(family)
    with listener, client:
        listener.bind((host, 0))
        listener.listen()
        listener.setblocking(False)
        client.setblocking(False)

        async def main():
            accepting = asyncio.ensure_future(loop.sock_accept(listener))
            await asyncio.sleep(0)
            await loop.sock_connect(client, listener.getsockname())
            conn, address = await accepting
            with conn:
                assert conn.gettimeout() == 0
                assert address == client.getsockname()
                await loop.sock_sendall(client, b"hi")
                assert await loop.sock_recv(conn, 10) == b"hi"
            # A port nobody listens on.
            closed = socket.socket(family)
            closed.bind((host, 0))
            port = closed.getsockname()[1]
            closed.close()
            other = socket.socket(family)
            other.setblocking(False)
            with other:
                with pytest.raises(ConnectionRefusedError):
                    await loop.sock_connect(other, (host, port))

        run(loop, main())


def test_bad_sockets(any_loop):
    loop = any_loop
    a, b = socket.socketpair()
    with a, b:
        async def main():
            # asyncio checks this in debug mode only; aioswift always.
            loop.set_debug(True)
            with pytest.raises(ValueError, match="non-blocking"):
                await loop.sock_recv(a, 1)
            loop.set_debug(False)
            a.setblocking(False)
            with pytest.raises(ValueError):
                await loop.sock_recv(a, -1)

        run(loop, main())


def test_peer_resets_under_sendall(any_loop):
    loop = any_loop
    a, b = pair()
    with a:
        async def main():
            sending = asyncio.ensure_future(loop.sock_sendall(a, b"x" * (8 << 20)))
            await asyncio.sleep(0.01)
            b.close()
            with pytest.raises((BrokenPipeError, ConnectionResetError)):
                await sending

        run(loop, main())


@pytest.fixture
def data_file():
    with tempfile.TemporaryFile() as file:
        content = os.urandom(3 << 20)
        file.write(content)
        file.flush()
        file.seek(0)
        yield file, content


def test_sock_sendfile(any_loop, data_file):
    loop = any_loop
    file, content = data_file
    for offset, count in ((0, None), (1000, 500_000)):
        a, b = pair()
        with a, b:
            async def main():
                reading = asyncio.ensure_future(read_all(loop, b))
                sent = await loop.sock_sendfile(a, file, offset, count)
                a.shutdown(socket.SHUT_WR)
                expected = content[offset:offset + count] if count else content[offset:]
                assert sent == len(expected)
                assert await reading == expected
                assert file.tell() == offset + sent

            run(loop, main())


def test_sock_sendfile_checks(any_loop, data_file):
    loop = any_loop
    file, _ = data_file
    a, b = pair()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    with a, b, udp:
        async def main():
            with pytest.raises(ValueError):
                await loop.sock_sendfile(a, file, -1)
            with pytest.raises(ValueError):
                await loop.sock_sendfile(a, file, 0, 0)
            with pytest.raises(ValueError):
                await loop.sock_sendfile(udp, file)

        run(loop, main())


def test_transport_sendfile_refuses_writes(any_loop, data_file):
    loop = any_loop
    file, content = data_file
    a, b = pair()
    with b:
        async def main():
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
            transport.write(b"head")
            sending = asyncio.ensure_future(loop.sendfile(transport, file))
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="sendfile is in progress"):
                transport.write(b"x")
            reading = asyncio.ensure_future(read_all(loop, b))
            assert await sending == len(content)
            transport.write(b"tail")
            transport.close()
            assert await reading == b"head" + content + b"tail"

        run(loop, main())
