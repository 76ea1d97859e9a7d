"""The sock_* methods of aioswift.Loop (asyncio's sock_recv ... sock_sendfile)
and loop.sendfile's native path, on the core's socket operations
(aios_sock_*, aios_transport_sendfile).

The core makes each call at once and, when it would block, waits for the
socket in a queue of its own per descriptor and direction: several
operations on one socket are served in the order they were started (in
asyncio a second sock_recv on a socket replaces the first's reader). A
cancelled operation leaves its queue at once: it never reads again, so what
it would have read stays in the socket, and a buffer handed to
sock_recv_into is not written after the cancel.

The core refuses blocking sockets always (a blocking call would stall the
loop); asyncio checks that in debug mode only, with the same ValueError.
"""

import io
import os
import socket
import sys

from asyncio import base_events, exceptions

from ._errors import exception_for_code
from ._future import CFuture
from ._network import _take_result
from ._runtime import NULL, ffi, lib
from . import _native


def _count(value):
    return int(ffi.cast("intptr_t", value))


def _unix_address(path):
    if isinstance(path, str):
        path = os.fsencode(path)
    path = bytes(path)
    # An abstract name (leading NUL) has no terminator.
    return socket.AF_UNIX.to_bytes(2, sys.byteorder) + path + (b"" if path[:1] == b"\0" else b"\0")


def _inet_address(family, address):
    """A resolved IPv4 or IPv6 address tuple as a struct sockaddr."""
    host, port = address[0], address[1]
    if family == socket.AF_INET:
        packed = socket.inet_pton(socket.AF_INET, host)
        return family.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big") + packed + bytes(8)
    flowinfo = address[2] if len(address) > 2 else 0
    scope_id = address[3] if len(address) > 3 else 0
    packed = socket.inet_pton(socket.AF_INET6, host)
    return (family.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big")
            + socket.htonl(flowinfo).to_bytes(4, sys.byteorder) + packed
            + int(scope_id).to_bytes(4, sys.byteorder))


def _family(sock, address):
    """The socket's family; for an object that only looks like a socket (a
    test's mock), the address's."""
    family = getattr(sock, "family", None)
    if isinstance(family, int):
        return family
    if isinstance(address, (str, bytes, bytearray)):
        return socket.AF_UNIX
    try:
        socket.inet_pton(socket.AF_INET, address[0])
        return socket.AF_INET
    except (OSError, TypeError):
        return socket.AF_INET6


def _resolved_now(sock, address):
    """`address` for `sock` as a struct sockaddr, resolving a name at once
    (as socket.sendto does)."""
    family = _family(sock, address)
    if family == socket.AF_UNIX:
        return _unix_address(address)
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise OSError(f"aioswift: sockets of family {family!r} are not supported")
    try:
        return _inet_address(family, address)
    except OSError:
        infos = socket.getaddrinfo(address[0], address[1], family, socket.SOCK_DGRAM)
        return _inet_address(family, infos[0][4])


class SocketMixin:
    """The sock_* methods of aioswift.Loop."""

    def _sock_fd(self, sock):
        base_events._check_ssl_socket(sock)
        if sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        self._check_closed()
        return sock.fileno()

    async def _sock_call(self, fd, start):
        """Runs start(out) (an aios_sock_* call), waits for its future; the
        finished CFuture."""
        out = ffi.new("aios_future_t **")
        status = start(out)
        if status < 0:
            if status == lib.AIOS_EINVAL and fd >= 0:
                # The checks above passed: the descriptor is a transport's.
                raise RuntimeError(f"File descriptor {fd!r} is used by transport")
            raise exception_for_code(status)
        cfuture = CFuture(self, out[0])
        if not cfuture.done():
            await self._wait_cfuture(cfuture)
        return cfuture

    async def sock_recv(self, sock, n):
        """asyncio's sock_recv: up to n bytes."""
        fd = self._sock_fd(sock)
        n = int(n)
        if n < 0:
            raise ValueError("negative buffersize in recv")
        cfuture = await self._sock_call(fd, lambda out: lib.aios_sock_recv(self._ptr, fd, n, out))
        value, destructor = _take_result(cfuture)
        try:
            data = ffi.cast("aios_bytes_t *", value)
            return ffi.buffer(data.data, data.length)[:]
        finally:
            destructor(value)

    async def sock_recv_into(self, sock, buf):
        """asyncio's sock_recv_into: the count read into buf."""
        fd = self._sock_fd(sock)
        target = ffi.from_buffer(buf, require_writable=True)
        cfuture = await self._sock_call(
            fd, lambda out: lib.aios_sock_recv_into(self._ptr, fd, target, len(target), out))
        value, _ = _take_result(cfuture)
        return _count(value)

    async def sock_recvfrom(self, sock, bufsize):
        """asyncio's sock_recvfrom: (bytes, address)."""
        fd = self._sock_fd(sock)
        bufsize = int(bufsize)
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        cfuture = await self._sock_call(fd, lambda out: lib.aios_sock_recvfrom(self._ptr, fd, bufsize, out))
        return self._received(sock, cfuture, lambda received: ffi.buffer(received.data, received.length)[:])

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """asyncio's sock_recvfrom_into: (count, address)."""
        fd = self._sock_fd(sock)
        target = ffi.from_buffer(buf, require_writable=True)
        if not nbytes:
            nbytes = len(target)
        elif nbytes < 0:
            raise ValueError("negative buffersize in recvfrom_into")
        elif nbytes > len(target):
            raise ValueError("nbytes is greater than the length of the buffer")
        cfuture = await self._sock_call(
            fd, lambda out: lib.aios_sock_recvfrom_into(self._ptr, fd, target, nbytes, out))
        return self._received(sock, cfuture, lambda received: received.length)

    @staticmethod
    def _received(sock, cfuture, data):
        """(data(received), sender) of a finished recvfrom's aios_received_t."""
        value, destructor = _take_result(cfuture)
        try:
            received = ffi.cast("aios_received_t *", value)
            if received.address_length == 0:
                # No address (an unbound Unix sender): what socket.recvfrom gives.
                sender = "" if sock.family == socket.AF_UNIX else None
            else:
                sender = _native.sockaddr(ffi.buffer(received.address, received.address_length))
            return data(received), sender
        finally:
            destructor(value)

    async def sock_sendall(self, sock, data):
        """asyncio's sock_sendall: all of data, or the error. What the socket
        does not take at once is copied by the core."""
        fd = self._sock_fd(sock)
        source = ffi.from_buffer(data)
        if len(source) == 0:
            return
        cfuture = await self._sock_call(fd, lambda out: lib.aios_sock_sendall(self._ptr, fd, source,
                                                                                len(source), out))
        _take_result(cfuture)

    async def sock_sendto(self, sock, data, address):
        """asyncio's sock_sendto: the count sent."""
        fd = self._sock_fd(sock)
        source = ffi.from_buffer(data)
        target = _resolved_now(sock, address)
        cfuture = await self._sock_call(fd, lambda out: lib.aios_sock_sendto(self._ptr, fd, source, len(source),
                                                                              target, len(target), out))
        value, _ = _take_result(cfuture)
        return _count(value)

    async def sock_connect(self, sock, address):
        """asyncio's sock_connect: an IP address is resolved first (on the
        core's resolver when it is a name), as asyncio does."""
        fd = self._sock_fd(sock)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                target = _inet_address(sock.family, address)
            except OSError:
                infos = await self.getaddrinfo(address[0], address[1], family=sock.family,
                                               type=sock.type, proto=sock.proto)
                address = infos[0][4]
                target = _inet_address(sock.family, address)
        elif sock.family == socket.AF_UNIX:
            target = _unix_address(address)
        else:
            raise OSError(f"aioswift: sockets of family {sock.family!r} are not supported")
        try:
            cfuture = await self._sock_call(fd, lambda out: lib.aios_sock_connect(self._ptr, fd, target,
                                                                                   len(target), out))
            _take_result(cfuture)
        except OSError as exc:
            if exc.errno and (exc.strerror or "").startswith("Connect call failed"):
                # asyncio's message names the address as Python writes it.
                raise OSError(exc.errno, f"Connect call failed {address}") from None
            raise

    async def sock_accept(self, sock):
        """asyncio's sock_accept: (connection, address), the connection
        non-blocking."""
        fd = self._sock_fd(sock)
        cfuture = await self._sock_call(fd, lambda out: lib.aios_sock_accept(self._ptr, fd, out))
        value, _ = _take_result(cfuture)
        conn = socket.socket(fileno=_count(value))
        conn.setblocking(False)
        try:
            address = conn.getpeername()
        except OSError:
            address = "" if conn.family == socket.AF_UNIX else None
        return conn, address

    # -- sendfile --------------------------------------------------------------

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        """asyncio's sock_sendfile: the kernel's sendfile for a regular file,
        the core's read-and-write fallback for another descriptor, asyncio's
        own fallback for a file object with no descriptor."""
        fd = self._sock_fd(sock)
        self._check_sendfile_params(sock, file, offset, count)
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            if not fallback:
                raise exceptions.SendfileNotAvailableError("not a regular file")
            return await self._sock_sendfile_fallback(sock, file, offset, count)
        mode = 1 if fallback else 0
        cfuture = await self._sock_call(
            fd, lambda out: lib.aios_sock_sendfile(self._ptr, fd, fileno, offset, count or -1, mode, out))
        value, _ = _take_result(cfuture)
        return _count(value)

    _check_sendfile_params = base_events.BaseEventLoop._check_sendfile_params
    _sock_sendfile_fallback = base_events.BaseEventLoop._sock_sendfile_fallback

    async def _sendfile_native(self, transport, file, offset, count):
        """loop.sendfile's native way on a transport of the core: the file
        goes to its socket once what was written before is sent; meanwhile
        the transport does not read and refuses writes."""
        chan = getattr(transport, "_chan", None)
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            raise exceptions.SendfileNotAvailableError("not a regular file")
        if chan is None or chan.address == 0:
            raise exceptions.SendfileNotAvailableError(f"not a transport of the core: {transport!r}")
        pointer = ffi.cast("aios_transport_t *", chan.address)
        cfuture = await self._sock_call(
            -1, lambda out: lib.aios_transport_sendfile(pointer, fileno, offset, count or -1, 0, out))
        value, _ = _take_result(cfuture)
        return _count(value)
