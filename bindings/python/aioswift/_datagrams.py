"""create_datagram_endpoint and DatagramTransport on the core's datagram
endpoints (aios_datagram_from_socket), with base_events' and
selector_events' semantics.

The socket is made, given its options, bound and connected here as asyncio
makes it (so its errors and checks are asyncio's: families, address pairs
resolved with loop.getaddrinfo, reuse_port, allow_broadcast, Unix datagram
sockets with a stale socket file removed, sock=); the core then serves a
duplicate of it: it reads, sends, buffers and does flow control. The Python
socket is get_extra_info('socket') and is closed with the transport.

The per-datagram side is C (_native_dgram.c): sendto is the Datagram's
method, set on the transport, and datagram_received is called from C.
"""

import os
import socket
import stat
import sys
import warnings

from asyncio import base_events, transports, trsock

from . import _native
from ._errors import exception_for_code, exception_from_error
from ._future import CFuture
from ._network import _take_result
from ._runtime import ffi, lib
from ._transport import logger, report_fatal_error

_PY312 = sys.version_info >= (3, 12)


def sendto_address(family, addr):
    """An address for sendto that the C side does not read (a host name):
    resolved as socket.sendto resolves it, with its errors."""
    if family == socket.AF_UNIX:
        raise TypeError(f"a bytes-like object is required, not {type(addr).__name__!r}")
    name = "AF_INET" if family == socket.AF_INET else "AF_INET6"
    if not isinstance(addr, tuple):
        raise TypeError(f"sendto(): {name} address must be tuple, not {type(addr).__name__}")
    infos = socket.getaddrinfo(addr[0], addr[1], family, socket.SOCK_DGRAM)
    return infos[0][4]


class DatagramTransport(transports._FlowControlMixin, transports.DatagramTransport):
    """A datagram endpoint of the core (asyncio's _SelectorDatagramTransport:
    it is a Transport too, with flow control)."""

    max_size = 256 * 1024

    def __init__(self, loop, dgram, sock, protocol, address):
        super().__init__(None, loop)
        self._extra["socket"] = trsock.TransportSocket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        try:
            self._extra["peername"] = sock.getpeername()
        except OSError:
            self._extra["peername"] = None
        self._sock = sock
        self._sock_fd = sock.fileno()
        self._address = address
        self._dgram = dgram
        self._made = False
        self._lost_called = False
        dgram.transport = self
        self.set_protocol(protocol)
        # The hot path: the Datagram's C methods, found before the class's.
        self.sendto = dgram.sendto
        self.is_closing = dgram.is_closing
        self.get_write_buffer_size = dgram.get_write_buffer_size
        loop._fd_transports.add(self)

    def __repr__(self):
        info = [type(self).__name__]
        if self._sock is None:
            info.append("closed")
        elif self._dgram.is_closing():
            info.append("closing")
        info.append(f"fd={self._sock_fd}")
        if self._sock is not None and not self._dgram.lost:
            size = self._dgram.get_write_buffer_size()
            info.append("read=idle" if self._dgram.is_closing() else "read=polling")
            info.append(f"write=<{'polling' if size else 'idle'}, bufsize={size}>")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn=warnings.warn):
        if getattr(self, "_sock", None) is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            dgram = getattr(self, "_dgram", None)
            if dgram is not None:
                dgram.abort()
            self._sock.close()

    def _fileno(self):
        return self._sock_fd if self._sock is not None else -1

    def _discard(self):
        # The endpoint never came: the socket is closed without a callback.
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._lost_called = True

    # -- asyncio.DatagramTransport -----------------------------------------

    def sendto(self, data, addr=None):
        self._dgram.sendto(data, addr)

    def close(self):
        self._dgram.close()

    def abort(self):
        self._dgram.abort()

    def is_closing(self):
        return self._dgram.is_closing()

    def get_write_buffer_size(self):
        return self._dgram.get_write_buffer_size()

    def set_protocol(self, protocol):
        self._dgram.set_protocol(protocol)
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    # -- flow control: the core's buffer and water marks ---------------------

    def set_write_buffer_limits(self, high=None, low=None):
        self._set_write_buffer_limits(high, low)
        self._dgram.set_write_buffer_limits(self._high_water, self._low_water)

    def _maybe_pause_protocol(self):
        pass        # the core pauses at the high-water mark

    def _maybe_resume_protocol(self):
        pass

    def _io_pause_writing(self, paused):
        # The core's pause_writing / resume_writing.
        if bool(paused) == self._protocol_paused:
            return
        self._protocol_paused = bool(paused)
        name = "pause_writing" if paused else "resume_writing"
        try:
            getattr(self._protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })

    # -- the core's events ---------------------------------------------------

    def _io_made(self):
        self._made = True
        self._loop._call_protocol(self._protocol.connection_made, self)

    def _io_error(self, error, queued):
        # The core's error_received: within sendto at once, as asyncio's;
        # from a read, queued after the datagrams read before it.
        exc = exception_from_error(ffi.cast("aios_error_t *", error))
        if queued:
            self._loop.call_soon(self._error_received, exc)
        else:
            self._error_received(exc)

    def _error_received(self, exc):
        if self._protocol is None:
            return
        try:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as failure:
            self._report_callback(failure, "error_received")

    def _report_callback(self, exc, name):
        # A protocol callback raised: as asyncio's _read_ready handle reports
        # it; the endpoint stays open.
        self._loop.call_exception_handler({
            "message": f"Exception in callback {type(self).__name__}._read_ready()",
            "exception": exc,
            "transport": self,
            "protocol": self._protocol,
        })

    def _fatal_error(self, exc, message="Fatal error on transport"):
        report_fatal_error(self, exc, message, quiet=isinstance(exc, OSError))
        # connection_lost gets `exc`, as asyncio's _force_close(exc) passes
        # it (the core's abort has no error to give).
        self._fatal_exc = exc
        self._dgram.abort()

    def _io_lost(self, error):
        exc = exception_from_error(ffi.cast("aios_error_t *", error)) if error is not None \
            else self.__dict__.pop("_fatal_exc", None)
        if self._lost_called:
            return
        self._lost_called = True
        try:
            self._protocol.connection_lost(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as failure:
            self._loop.call_exception_handler({
                "message": f"Exception in callback {type(self).__name__}."
                           f"_call_connection_lost({exc!r})",
                "exception": failure,
                "transport": self,
                "protocol": self._protocol,
            })
        finally:
            sock, self._sock = self._sock, None
            if sock is not None:
                sock.close()
            self._protocol = None


class DatagramsMixin:
    """create_datagram_endpoint of aioswift.Loop."""

    async def create_datagram_endpoint(self, protocol_factory, local_addr=None, remote_addr=None,
                                       *, family=0, proto=0, flags=0, reuse_port=None,
                                       allow_broadcast=None, sock=None):
        """asyncio's create_datagram_endpoint: UDP or Unix datagram sockets,
        made here as asyncio makes them, served by the core."""
        if sock is not None:
            if _PY312 and sock.type == socket.SOCK_STREAM:
                raise ValueError(f"A datagram socket was expected, got {sock!r}")
            if not _PY312 and sock.type != socket.SOCK_DGRAM:
                raise ValueError(f"A UDP Socket was expected, got {sock!r}")
            if (local_addr or remote_addr or family or proto or flags or reuse_port or
                    allow_broadcast):
                opts = dict(local_addr=local_addr, remote_addr=remote_addr, family=family,
                            proto=proto, flags=flags, reuse_port=reuse_port,
                            allow_broadcast=allow_broadcast)
                problems = ", ".join(f"{k}={v}" for k, v in opts.items() if v)
                raise ValueError(f"socket modifier keyword arguments can not be used "
                                 f"when sock is specified. ({problems})")
            sock.setblocking(False)
            r_addr = None
        else:
            sock, r_addr = await self._datagram_socket(local_addr, remote_addr, family, proto,
                                                       flags, reuse_port, allow_broadcast)
        protocol = protocol_factory()
        transport = await self._serve_datagrams(sock, protocol, r_addr)
        if self._debug:
            if local_addr:
                logger.info("Datagram endpoint local_addr=%r remote_addr=%r created: (%r, %r)",
                            local_addr, remote_addr, transport, protocol)
            else:
                logger.debug("Datagram endpoint remote_addr=%r created: (%r, %r)",
                             remote_addr, transport, protocol)
        return transport, protocol

    async def _datagram_socket(self, local_addr, remote_addr, family, proto, flags, reuse_port,
                               allow_broadcast):
        """The bound (and connected) socket, as base_events makes it."""
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError("unexpected address family")
            addr_pairs_info = (((family, proto), (None, None)),)
        elif hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError("string is expected")
            if local_addr and local_addr[0] not in (0, "\x00"):
                try:
                    if stat.S_ISSOCK(os.stat(local_addr).st_mode):
                        os.remove(local_addr)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    # The directory may let us make a socket and no more.
                    logger.error("Unable to check or remove stale UNIX socket %r: %r",
                                 local_addr, err)
            addr_pairs_info = (((family, proto), (local_addr, remote_addr)),)
        else:
            # The addresses by (family, protocol), in order.
            addr_infos = {}
            for idx, addr in ((0, local_addr), (1, remote_addr)):
                if addr is not None:
                    if not (isinstance(addr, tuple) and len(addr) == 2):
                        raise TypeError("2-tuple is expected")
                    infos = await base_events.BaseEventLoop._ensure_resolved(
                        self, addr, family=family, type=socket.SOCK_DGRAM, proto=proto,
                        flags=flags, loop=self)
                    if not infos:
                        raise OSError("getaddrinfo() returned empty list")
                    for fam, _, pro, _, address in infos:
                        key = (fam, pro)
                        if key not in addr_infos:
                            addr_infos[key] = [None, None]
                        addr_infos[key][idx] = address
            # Each address asked for must have one of each (family, protocol).
            addr_pairs_info = [
                (key, addr_pair) for key, addr_pair in addr_infos.items()
                if not ((local_addr and addr_pair[0] is None) or
                        (remote_addr and addr_pair[1] is None))]
            if not addr_pairs_info:
                raise ValueError("can not get address information")
        exceptions = []
        for (family, proto), (local_address, remote_address) in addr_pairs_info:
            sock = None
            r_addr = None
            try:
                sock = socket.socket(family=family, type=socket.SOCK_DGRAM, proto=proto)
                if reuse_port:
                    base_events._set_reuseport(sock)
                if allow_broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setblocking(False)
                if local_addr:
                    sock.bind(local_address)
                if remote_addr:
                    if not allow_broadcast:
                        # A datagram socket connects at once (asyncio awaits
                        # sock_connect, which returns at once for it).
                        sock.connect(remote_address)
                    r_addr = remote_address
            except OSError as exc:
                if sock is not None:
                    sock.close()
                exceptions.append(exc)
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            else:
                return sock, r_addr
        raise exceptions[0]

    async def _serve_datagrams(self, sock, protocol, r_addr):
        """The transport of `sock`, served by the core on a duplicate of it;
        returns once connection_made ran."""
        self._check_closed()
        self._core.claim()
        try:
            # asyncio sends to the peer when its peername is true ('' is an
            # unnamed Unix peer: asyncio then needs an address).
            connected = bool(sock.getpeername())
        except OSError:
            connected = False
        dgram = _native.Datagram(self._core, sock.family, connected, r_addr)
        transport = DatagramTransport(self, dgram, sock, protocol, r_addr)
        table = ffi.new("aios_datagram_protocol_t *")
        table.size = ffi.sizeof("aios_datagram_protocol_t")
        dgram.fill(int(ffi.cast("uintptr_t", table)))
        fd = os.dup(sock.fileno())
        out = ffi.new("aios_future_t **")
        status = lib.aios_datagram_from_socket(self._ptr, table, fd, out)
        if status < 0:
            os.close(fd)
            dgram.abandon(True)
            transport._discard()
            raise exception_for_code(status)
        cfuture = CFuture(self, out[0])
        try:
            await self._wait_cfuture(cfuture)
            value, destructor = _take_result(cfuture)
        except BaseException:
            if transport._made:
                transport.close()       # connection_lost follows
            else:
                dgram.abandon(False)
                transport._discard()
            raise
        # The endpoint's reference the result held: the Datagram has its own.
        destructor(value)
        return transport


__all__ = ["DatagramTransport", "DatagramsMixin", "sendto_address"]
