"""The loop's network methods on the core's (asyncio's base_events.py and
unix_events.py semantics): getaddrinfo and getnameinfo on the core's
resolver, create_connection, create_unix_connection, connect_accepted_socket,
create_server, create_unix_server, start_tls, and Server.

Connections are the core's (aios_create_connection and friends) with a
batched protocol whose token names the connection's Channel; its events
arrive through _native's io_ready, and CONNECTED comes back here
(Loop._io_connected) to make the protocol and the transport. TLS is
asyncio's own sslproto.SSLProtocol over our transport, as asyncio layers it
over its selector transports.

Listening sockets are made here as asyncio makes them (so its errors and
options are asyncio's), and each is served by a core server
(aios_create_server with the socket), which accepts and makes the
connections' transports in C; the server's connections get their tokens
from _native's server_factory.
"""

import collections.abc
import errno
import functools
import itertools
import os
import re
import socket
import stat
import sys
import weakref

from asyncio import base_events, constants, events, exceptions, format_helpers, sslproto, tasks

from . import _native
from ._errors import exception_for_code
from ._future import CFuture
from ._runtime import NULL, ffi, lib
from ._transport import TCPTransport, UnixTransport, logger

try:
    import ssl as ssl_module
except ImportError:  # pragma: no cover
    ssl_module = None

_PY312 = sys.version_info >= (3, 12)
_PY313 = sys.version_info >= (3, 13)
_HAS_IPV6 = hasattr(socket, "AF_INET6")

_server_keys = itertools.count(1)


def _check_ssl_socket(sock):
    if ssl_module is not None and isinstance(sock, ssl_module.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _host_bytes(host):
    if host is None:
        return NULL
    if isinstance(host, str):
        return host.encode("idna")
    if isinstance(host, (bytes, bytearray)):
        return bytes(host)
    raise TypeError(f"str, bytes or None expected, not {type(host).__name__}")


def _service_bytes(port):
    if port is None:
        return NULL
    if isinstance(port, int):
        return str(port).encode()
    if isinstance(port, str):
        return port.encode()
    if isinstance(port, (bytes, bytearray)):
        return bytes(port)
    raise OSError("Int or String expected")


def _port_number(port):
    """create_connection's port as a number (asyncio also takes a service name)."""
    if port is None:
        return 0
    if isinstance(port, (bytes, bytearray)):
        port = port.decode()
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        return socket.getservbyname(port, "tcp")
    return int(port)


def _enum(converter, value):
    try:
        return converter(value)
    except ValueError:
        return value


def _sockaddr_bytes(sockaddr):
    """A Python IP address tuple as a struct sockaddr (for getnameinfo)."""
    if not isinstance(sockaddr, tuple):
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    if len(sockaddr) < 2 or len(sockaddr) > 4:
        raise TypeError("getnameinfo(): illegal sockaddr argument")
    host, port = sockaddr[0], sockaddr[1]
    flowinfo = sockaddr[2] if len(sockaddr) > 2 else 0
    scope_id = sockaddr[3] if len(sockaddr) > 3 else 0
    if not isinstance(port, int):
        raise TypeError("'str' object cannot be interpreted as an integer")
    if not 0 <= port <= 0xFFFF:
        raise OverflowError("getnameinfo(): port must be 0-65535.")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, host)
        except (OSError, TypeError):
            continue
        if family == socket.AF_INET:
            if len(sockaddr) != 2:
                raise OSError("IPv4 sockaddr must be 2 tuple")
            return (family.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big") + packed
                    + bytes(8))
        return (family.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big")
                + socket.htonl(flowinfo).to_bytes(4, sys.byteorder) + packed
                + int(scope_id).to_bytes(4, sys.byteorder))
    raise socket.gaierror(socket.EAI_NONAME, _native.gai_strerror(socket.EAI_NONAME))


_BIND_ERROR = re.compile(r"^error while attempting to bind on address (\[(.*)\]|([^\[\]]*)):(\d+): ")


def _asyncio_bind_error(exc):
    """The core's local bind error with asyncio's message, whose address is
    the Python sockaddr: "... on address ('127.0.0.1', 8080): address
    already in use"."""
    match = _BIND_ERROR.match(exc.strerror or "")
    if match is None or exc.errno is None:
        return exc
    port = int(match.group(4))
    address = (match.group(2), port, 0, 0) if match.group(2) is not None else \
        (match.group(3), port)
    return OSError(exc.errno, f"error while attempting to bind on address {address!r}: "
                              f"{os.strerror(exc.errno).lower()}")


def _take_result(cfuture):
    """(value, destructor) of a finished C future, moved out of it; raises
    its error."""
    value = ffi.new("void **")
    destructor = ffi.new("aios_destructor_fn *")
    status = lib.aios_future_take_result(cfuture._ptr, value, destructor)
    if status < 0:
        raise cfuture._failure(status)
    return value[0], destructor[0]


def _format_call(fn, arg):
    return format_helpers._format_callback_source(fn, (arg,))


class Connecting:
    """A connection on its way: what CONNECTED needs to make its protocol
    and transport (asyncio's _create_connection_transport)."""

    def __init__(self, loop, protocol_factory, transport_class, tls=(False, None),
                 server_side=False, server_hostname=None, ssl_handshake_timeout=None,
                 ssl_shutdown_timeout=None):
        self.loop = loop
        self.protocol_factory = protocol_factory
        self.transport_class = transport_class
        self.use_ssl, self.sslcontext = tls
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.ssl_handshake_timeout = ssl_handshake_timeout
        self.ssl_shutdown_timeout = ssl_shutdown_timeout
        self.waiter = None
        self.sock = None                 # the caller's socket (sock=), if any
        self.error = None
        self.protocol = None
        self.transport = None
        self.app_transport = None

    def connected(self, chan):
        loop = self.loop
        try:
            protocol = self.protocol_factory()
        except BaseException as exc:
            # create_connection raises it (asyncio calls the factory there).
            self.error = exc
            chan.abort()
            return
        self.protocol = protocol
        if self.use_ssl:
            self.waiter = loop.create_future()
            ssl_protocol = sslproto.SSLProtocol(
                loop, protocol, self.sslcontext, self.waiter, self.server_side,
                self.server_hostname, ssl_handshake_timeout=self.ssl_handshake_timeout,
                ssl_shutdown_timeout=self.ssl_shutdown_timeout)
            self.transport = self.transport_class(loop, chan, ssl_protocol, sock=self.sock)
            self.app_transport = ssl_protocol._app_transport
        else:
            self.transport = self.app_transport = self.transport_class(loop, chan, protocol,
                                                                       sock=self.sock)
        loop._call_protocol(self.transport._protocol.connection_made, self.transport)


class Server(events.AbstractServer):
    """asyncio.Server's behaviour over the core's servers, one per
    listening socket."""

    def __init__(self, loop, sockets, protocol_factory, ssl_context, backlog,
                 ssl_handshake_timeout, ssl_shutdown_timeout=None, unix=False,
                 cleanup=None):
        self._loop = loop
        self._key = next(_server_keys)
        self._sockets = sockets          # the listening sockets, None once closed
        self._cservers = []              # aios_server_t * (one reference each)
        self._clients = weakref.WeakSet() if _PY313 else set()
        self._active_count = 0
        self._waiters = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut = None
        self._transport_class = UnixTransport if unix else TCPTransport
        self._cleanup = cleanup or {}    # Unix socket path -> inode to remove at close

    def __repr__(self):
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    # asyncio's _attach and _detach take the transport from 3.13 on (and
    # its tests call them without one before).
    def _attach(self, transport=None):
        self._active_count += 1
        if transport is not None:
            self._clients.add(transport)

    def _detach(self, transport=None):
        self._active_count -= 1
        if transport is not None:
            self._clients.discard(transport)
        if self._active_count == 0 and self._sockets is None:
            self._wakeup()

    def _wakeup(self):
        waiters = self._waiters
        self._waiters = None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None if _PY312 else waiter)

    def _start_serving(self):
        if self._serving:
            return
        self._serving = True
        for cserver in self._cservers:
            status = lib.aios_server_start_serving(cserver)
            if status < 0:
                raise exception_for_code(status)

    def _accept(self, chan):
        # A connection the core accepted (asyncio's _accept_connection2).
        loop = self._loop
        protocol = transport = None
        try:
            protocol = self._protocol_factory()
            if self._ssl_context is not None:
                waiter = loop.create_future()
                ssl_protocol = sslproto.SSLProtocol(
                    loop, protocol, self._ssl_context, waiter, True, None,
                    ssl_handshake_timeout=self._ssl_handshake_timeout,
                    ssl_shutdown_timeout=self._ssl_shutdown_timeout)
                transport = self._transport_class(loop, chan, ssl_protocol, server=self)
                waiter.add_done_callback(
                    functools.partial(_handshake_done, loop, ssl_protocol._app_transport,
                                      protocol))
                loop._call_protocol(ssl_protocol.connection_made, transport)
            else:
                transport = self._transport_class(loop, chan, protocol, server=self)
                loop._call_protocol(protocol.connection_made, transport)
        except (SystemExit, KeyboardInterrupt):
            chan.abort()
            raise
        except BaseException as exc:
            if transport is None:
                chan.abort()
            else:
                transport.close()
            if loop.get_debug():
                context = {"message": "Error on transport creation for incoming connection",
                           "exception": exc}
                if protocol is not None:
                    context["protocol"] = protocol
                if transport is not None:
                    context["transport"] = transport
                loop.call_exception_handler(context)

    def get_loop(self):
        return self._loop

    def is_serving(self):
        return self._serving

    @property
    def sockets(self):
        if self._sockets is None:
            return ()
        from asyncio import trsock
        return tuple(trsock.TransportSocket(s) for s in self._sockets)

    def close(self):
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        paths = [(s.getsockname(), self._cleanup[s]) for s in sockets if s in self._cleanup]
        self._loop._release_servers(self)
        # Connections it accepted before closing may still come.
        self._loop._servers.pop(self._key, None)
        self._loop._closed_servers[self._key] = self
        for sock in sockets:
            sock.close()
        for path, inode in paths:
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)
        self._serving = False
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        if self._active_count == 0:
            self._wakeup()

    def close_clients(self):
        for transport in list(self._clients):
            transport.close()

    def abort_clients(self):
        for transport in list(self._clients):
            transport.abort()

    async def start_serving(self):
        self._start_serving()
        await tasks.sleep(0)

    async def serve_forever(self):
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except exceptions.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self):
        # 3.11 returns at once for a closed server (its documented bug,
        # fixed in 3.12.1); later versions wait for the last connection too.
        if (not _PY312 and self._sockets is None) or self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


def _handshake_done(loop, app_transport, protocol, waiter):
    if waiter.cancelled():
        return
    exc = waiter.exception()
    if exc is None:
        return
    app_transport.close()
    if loop.get_debug():
        loop.call_exception_handler({
            "message": "Error on transport creation for incoming connection",
            "exception": exc, "protocol": protocol, "transport": app_transport})


if not _PY313:
    del Server.close_clients, Server.abort_clients


class NetworkMixin:
    """The network methods of aioswift.Loop."""

    # -- plumbing ------------------------------------------------------------

    def _io_setup(self):
        if not self._io_on:
            self._core.io_enable()
            self._io_on = True

    def _io_connected(self, chan, server_key):
        # CONNECTED, from _native's io_ready.
        if server_key:
            server = self._servers.get(server_key) or self._closed_servers.get(server_key)
            if server is None:
                chan.abort()
                return
            server._accept(chan)
            return
        pending = chan.context
        chan.context = None
        if pending is None:
            chan.abort()
            return
        pending.connected(chan)

    def _call_protocol(self, fn, arg):
        # A protocol callback asyncio would call with call_soon: what it
        # raises goes to the exception handler as "Exception in callback".
        try:
            fn(arg)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.call_exception_handler({
                "message": f"Exception in callback {_format_call(fn, arg)}",
                "exception": exc,
            })

    async def _wait_cfuture(self, cfuture):
        waiter = self.create_future()

        def done(_):
            if not waiter.done():
                waiter.set_result(None)

        cfuture.add_done_callback(done)
        try:
            await waiter
        except BaseException:
            cfuture.cancel()
            raise

    async def _connect(self, start, pending):
        """Runs start(table, out) (an aios_* call that makes a connection with
        the batched protocol `table`), waits, returns (transport, protocol)."""
        self._check_closed()
        self._io_setup()
        chan = _native.Channel(self._core)
        chan.context = pending
        table = ffi.new("aios_protocol_t *")
        table.size = ffi.sizeof("aios_protocol_t")
        table.batched = 1
        table.token = chan.token
        out = ffi.new("aios_future_t **")
        status = start(table, out)
        if status < 0:
            chan.release()
            raise exception_for_code(status)
        cfuture = CFuture(self, out[0])
        try:
            await self._wait_cfuture(cfuture)
        except BaseException:
            if pending.app_transport is not None:
                pending.app_transport.close()
            else:
                chan.release()
                if cfuture.done() and not cfuture.cancelled():
                    try:
                        value, destructor = _take_result(cfuture)
                    except BaseException:
                        pass
                    else:
                        # Connected, but nobody will use it.
                        ptr = ffi.cast("aios_transport_t *", value)
                        lib.aios_transport_abort(ptr)
                        destructor(value)
            raise
        try:
            value, destructor = _take_result(cfuture)
        except BaseException:
            chan.release()
            raise
        # The transport's reference the result held: the channel has its own.
        destructor(value)
        if pending.error is not None:
            error, pending.error = pending.error, None
            raise error
        if pending.app_transport is None:
            chan.abort()
            raise RuntimeError("aioswift: the connection came without its CONNECTED event")
        if pending.waiter is not None:
            try:
                await pending.waiter
            except BaseException:
                pending.app_transport.close()
                raise
        return pending.app_transport, pending.protocol

    # -- names -----------------------------------------------------------------

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        """socket.getaddrinfo on the core's resolver."""
        self._check_closed()
        host_c = _host_bytes(host)
        service = _service_bytes(port)
        out = ffi.new("aios_future_t **")
        status = lib.aios_getaddrinfo(self._ptr, host_c, service, int(family), int(type),
                                      int(proto), int(flags), out)
        if status < 0:
            if host_c == NULL and service == NULL:
                raise socket.gaierror(socket.EAI_NONAME, _native.gai_strerror(socket.EAI_NONAME))
            raise exception_for_code(status)
        cfuture = CFuture(self, out[0])
        await self._wait_cfuture(cfuture)
        value, destructor = _take_result(cfuture)
        try:
            items = ffi.cast("aios_addrinfo_list_t *", value)
            result = []
            for i in range(items.count):
                item = items.items[i]
                address = _native.sockaddr(ffi.buffer(item.address.bytes, item.length))
                canonname = ffi.string(item.canonname).decode() if item.canonname != NULL else ""
                result.append((_enum(socket.AddressFamily, item.family),
                               _enum(socket.SocketKind, item.socktype),
                               item.protocol, canonname, address))
        finally:
            destructor(value)
        return result

    async def getnameinfo(self, sockaddr, flags=0):
        """socket.getnameinfo on the core's resolver."""
        self._check_closed()
        address = _sockaddr_bytes(sockaddr)
        out = ffi.new("aios_future_t **")
        status = lib.aios_getnameinfo(self._ptr, address, len(address), int(flags), out)
        if status < 0:
            raise exception_for_code(status)
        cfuture = CFuture(self, out[0])
        await self._wait_cfuture(cfuture)
        value, destructor = _take_result(cfuture)
        try:
            info = ffi.cast("aios_nameinfo_t *", value)
            host = ffi.string(info.host).decode() if info.host != NULL else ""
            service = ffi.string(info.service).decode() if info.service != NULL else ""
        finally:
            destructor(value)
        return host, service

    # -- connections -------------------------------------------------------------

    async def create_connection(self, protocol_factory, host=None, port=None, *, ssl=None,
                                family=0, proto=0, flags=0, sock=None, local_addr=None,
                                server_hostname=None, ssl_handshake_timeout=None,
                                ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
                                interleave=None, all_errors=False):
        """asyncio's create_connection: the core resolves and connects (happy
        eyeballs included); ssl= layers asyncio's SSLProtocol."""
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            if not host:
                raise ValueError("You must set server_hostname when using ssl without a host")
            server_hostname = host
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if sock is not None:
            _check_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1
        tls = _ssl_context(ssl)
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            options = ffi.new("aios_connect_options_t *")
            options.size = ffi.sizeof("aios_connect_options_t")
            options.family = int(family)
            options.flags = int(flags)
            keep = []
            if local_addr is not None:
                local_host, local_port = local_addr[0], local_addr[1]
                if local_host is not None:
                    local_host_c = ffi.new("char[]", _host_bytes(local_host))
                    keep.append(local_host_c)
                    options.local_host = local_host_c
                else:
                    local_host_c = ffi.new("char[]", b"0.0.0.0" if family != socket.AF_INET6
                                           else b"::")
                    keep.append(local_host_c)
                    options.local_host = local_host_c
                options.local_port = _port_number(local_port)
            if happy_eyeballs_delay is not None:
                options.happy_eyeballs_delay = float(happy_eyeballs_delay)
            if interleave:
                options.interleave = int(interleave)
            host_c = _host_bytes(host)
            port_c = _port_number(port)
            pending = Connecting(self, protocol_factory, TCPTransport, tls, False,
                                 server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
            try:
                transport, protocol = await self._connect(
                    lambda table, out: lib.aios_create_connection(self._ptr, table, host_c,
                                                                  port_c, options, out),
                    pending)
            except OSError as exc:
                exc = _asyncio_bind_error(exc)
                if all_errors:
                    raise ExceptionGroup("create_connection failed", [exc]) from None
                raise exc from None
            finally:
                del keep
        else:
            if sock is None:
                raise ValueError("host and port was not specified and no sock specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
            transport, protocol = await self._connect_socket(
                sock, protocol_factory, tls, server_hostname, False,
                ssl_handshake_timeout, ssl_shutdown_timeout)
        if self._debug:
            logger.debug("%r connected to %s:%r: (%r, %r)",
                         transport.get_extra_info("socket"), host, port, transport, protocol)
        return transport, protocol

    async def _connect_socket(self, sock, protocol_factory, tls, server_hostname,
                              server_side, ssl_handshake_timeout, ssl_shutdown_timeout):
        transport_class = UnixTransport if sock.family == socket.AF_UNIX else TCPTransport
        pending = Connecting(self, protocol_factory, transport_class, tls, server_side,
                             server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
        sock.setblocking(False)
        # The core owns a duplicate; the caller's socket stays usable, and
        # the transport closes it with the connection, as asyncio's does.
        fd = os.dup(sock.fileno())
        pending.sock = sock

        def start(table, out):
            status = lib.aios_connect_accepted_socket(self._ptr, table, fd, out)
            if status < 0:
                os.close(fd)
            return status

        return await self._connect(start, pending)

    async def create_unix_connection(self, protocol_factory, path=None, *, ssl=None, sock=None,
                                     server_hostname=None, ssl_handshake_timeout=None,
                                     ssl_shutdown_timeout=None):
        """asyncio's create_unix_connection."""
        assert server_hostname is None or isinstance(server_hostname, str)
        if ssl:
            if server_hostname is None:
                raise ValueError("you have to pass server_hostname when using ssl")
        else:
            if server_hostname is not None:
                raise ValueError("server_hostname is only meaningful with ssl")
            if ssl_handshake_timeout is not None:
                raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
            if ssl_shutdown_timeout is not None:
                raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        tls = _ssl_context(ssl)
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path_c = os.fsencode(os.fspath(path))
            pending = Connecting(self, protocol_factory, UnixTransport, tls, False,
                                 server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
            return await self._connect(
                lambda table, out: lib.aios_create_unix_connection(self._ptr, table, path_c, out),
                pending)
        if sock is None:
            raise ValueError("no path and sock were specified")
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        return await self._connect_socket(sock, protocol_factory, tls, server_hostname,
                                          False, ssl_handshake_timeout, ssl_shutdown_timeout)

    async def connect_accepted_socket(self, protocol_factory, sock, *, ssl=None,
                                      ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """asyncio's connect_accepted_socket: the transport takes `sock` over."""
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        _check_ssl_socket(sock)
        transport, protocol = await self._connect_socket(
            sock, protocol_factory, _ssl_context(ssl), "", True, ssl_handshake_timeout,
            ssl_shutdown_timeout)
        if self._debug:
            logger.debug("%r handled: (%r, %r)", transport.get_extra_info("socket"),
                         transport, protocol)
        return transport, protocol

    # -- sendfile ------------------------------------------------------------------

    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        """asyncio's sendfile: the core's (_sockets.py's _sendfile_native) for
        a regular file on a transport of the core, else asyncio's own
        fallback (the file read in the default executor, written with the
        transport's flow control)."""
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        mode = getattr(transport, "_sendfile_compatible", constants._SendfileMode.UNSUPPORTED)
        if mode is constants._SendfileMode.UNSUPPORTED:
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        if mode is constants._SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except exceptions.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(f"fallback is disabled and native sendfile is not "
                               f"supported for transport {transport!r}")
        return await base_events.BaseEventLoop._sendfile_fallback(self, transport, file,
                                                                  offset, count)

    # -- TLS ---------------------------------------------------------------------

    async def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                        server_hostname=None, ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        """asyncio's start_tls: asyncio's SSLProtocol takes the transport over
        and gives back the transport the protocol uses from now on."""
        if ssl_module is None:
            raise RuntimeError("Python ssl module is not available")
        if not isinstance(sslcontext, ssl_module.SSLContext):
            raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, "
                            f"got {sslcontext!r}")
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        waiter = self.create_future()
        ssl_protocol = sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout, call_connection_made=False)
        # Paused first: nothing may reach the SSL protocol before its
        # connection_made.
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        made = self.call_soon(ssl_protocol.connection_made, transport)
        resumed = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            raise
        return ssl_protocol._app_transport

    # -- servers -------------------------------------------------------------------

    def _release_servers(self, server):
        for cserver in server._cservers:
            lib.aios_server_close(cserver)
            lib.aios_server_unref(cserver)
            self._server_refs.discard(cserver)
            self._core.io_servers = max(0, self._core.io_servers - 1)
        server._cservers = []

    async def _serve(self, server, sock, unix):
        """A core server (not serving yet) on a duplicate of the bound socket `sock`."""
        factory, arg, destructor = self._core.server_factory(server._key)
        options = ffi.new("aios_server_options_t *")
        options.size = ffi.sizeof("aios_server_options_t")
        options.backlog = max(int(server._backlog), 1) if server._backlog is not None else 100
        options.start_serving = -1
        options.has_sock = 1
        # The core serves a duplicate; the socket stays the server's (its
        # `sockets`), closed at close() as asyncio closes it.
        options.sock = fd = os.dup(sock.fileno())
        # The socket file is this loop's to remove (only 3.13's asyncio does).
        options.keep_socket_file = 1
        out = ffi.new("aios_future_t **")
        factory_c = ffi.cast("aios_protocol_factory_fn", factory)
        arg_c = ffi.cast("void *", arg)
        destructor_c = ffi.cast("aios_destructor_fn", destructor)
        if unix:
            status = lib.aios_create_unix_server(self._ptr, factory_c, arg_c, destructor_c, NULL,
                                                 options, out)
        else:
            status = lib.aios_create_server(self._ptr, factory_c, arg_c, destructor_c, NULL, 0,
                                            options, out)
        if status < 0:
            destructor_c(arg_c)
            os.close(fd)
            raise exception_for_code(status)
        cfuture = CFuture(self, out[0])
        await self._wait_cfuture(cfuture)
        value, _ = _take_result(cfuture)
        cserver = ffi.cast("aios_server_t *", value)
        self._server_refs.add(cserver)
        self._core.io_servers += 1
        server._cservers.append(cserver)

    async def _make_server(self, sockets, protocol_factory, ssl, backlog,
                           ssl_handshake_timeout, ssl_shutdown_timeout, start_serving,
                           unix=False, cleanup=None):
        self._check_closed()
        self._io_setup()
        server = Server(self, sockets, protocol_factory, ssl, backlog, ssl_handshake_timeout,
                        ssl_shutdown_timeout, unix=unix, cleanup=cleanup)
        self._servers[server._key] = server
        try:
            for sock in sockets:
                sock.setblocking(False)
                await self._serve(server, sock, unix)
        except BaseException:
            server.close()
            raise
        if start_serving:
            server._start_serving()
            await tasks.sleep(0)
        if self._debug:
            logger.info("%r is serving", server)
        return server

    async def create_server(self, protocol_factory, host=None, port=None, *,
                            family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
                            backlog=100, ssl=None, reuse_address=None, reuse_port=None,
                            keep_alive=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None, start_serving=True):
        """asyncio's create_server: the listening sockets are made and bound
        as asyncio does, then served by the core."""
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and ssl is None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if sock is not None:
            _check_ssl_socket(sock)
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            if reuse_address is None:
                reuse_address = os.name == "posix" and sys.platform != "cygwin"
            if host == "":
                hosts = [None]
            elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
                hosts = [host]
            else:
                hosts = host
            infos = await tasks.gather(*[self._server_addresses(h, port, family, flags)
                                         for h in hosts])
            infos = set(itertools.chain.from_iterable(infos))
            sockets = []
            completed = False
            try:
                for af, socktype, proto, _canonname, sa in infos:
                    try:
                        sock = socket.socket(af, socktype, proto)
                    except socket.error:
                        if self._debug:
                            logger.warning("create_server() failed to create "
                                           "socket.socket(%r, %r, %r)", af, socktype, proto,
                                           exc_info=True)
                        continue
                    sockets.append(sock)
                    if reuse_address:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
                    if reuse_port:
                        if not hasattr(socket, "SO_REUSEPORT"):
                            raise ValueError("reuse_port not supported by socket module")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    if keep_alive:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
                    if _HAS_IPV6 and af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                    try:
                        sock.bind(sa)
                    except OSError as err:
                        message = ("error while attempting to bind on address %r: %s"
                                   % (sa, str(err).lower() if _PY313 else
                                      (err.strerror or str(err)).lower()))
                        if err.errno == errno.EADDRNOTAVAIL:
                            sockets.pop()
                            sock.close()
                            if self._debug:
                                logger.warning(message)
                            continue
                        raise OSError(err.errno, message) from None
                if not sockets:
                    raise OSError("could not bind on any address out of %r"
                                  % ([info[4] for info in infos],))
                completed = True
            finally:
                if not completed:
                    for sock in sockets:
                        sock.close()
        else:
            if sock is None:
                raise ValueError("Neither host/port nor sock were specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
            sockets = [sock]
        return await self._make_server(sockets, protocol_factory, ssl, backlog,
                                       ssl_handshake_timeout, ssl_shutdown_timeout,
                                       start_serving)

    async def _server_addresses(self, host, port, family, flags):
        infos = await self.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM,
                                       flags=flags)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos

    async def create_unix_server(self, protocol_factory, path=None, *, sock=None, backlog=100,
                                 ssl=None, ssl_handshake_timeout=None,
                                 ssl_shutdown_timeout=None, start_serving=True,
                                 cleanup_socket=True):
        """asyncio's create_unix_server."""
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if path[0] not in (0, "\x00"):
                try:
                    if stat.S_ISSOCK(os.stat(path).st_mode):
                        os.remove(path)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") \
                        from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        cleanup = {}
        if _PY313 and cleanup_socket:
            bound = sock.getsockname()
            if bound and bound[0] not in (0, "\x00"):
                try:
                    cleanup[sock] = os.stat(bound).st_ino
                except FileNotFoundError:
                    pass
        return await self._make_server([sock], protocol_factory, ssl, backlog,
                                       ssl_handshake_timeout, ssl_shutdown_timeout,
                                       start_serving, unix=True, cleanup=cleanup)

    def _close_network(self):
        # The core's loop closed: its transports and servers are gone.
        for cserver in list(self._server_refs):
            lib.aios_server_unref(cserver)
        self._server_refs.clear()
        for server in list(self._servers.values()):
            server._cservers = []
        self._servers.clear()
        self._core.io_servers = 0


def _ssl_context(ssl):
    """(use TLS, the context or None for asyncio's default one)."""
    if not ssl:
        return False, None
    if ssl_module is None:
        raise RuntimeError("Python ssl module is not available")
    return True, None if isinstance(ssl, bool) else ssl


if not _PY313:
    # keep_alive came with 3.13.
    _create_server = NetworkMixin.create_server

    async def create_server(self, protocol_factory, host=None, port=None, *,
                            family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
                            backlog=100, ssl=None, reuse_address=None, reuse_port=None,
                            ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                            start_serving=True):
        return await _create_server(self, protocol_factory, host, port, family=family,
                                    flags=flags, sock=sock, backlog=backlog, ssl=ssl,
                                    reuse_address=reuse_address, reuse_port=reuse_port,
                                    ssl_handshake_timeout=ssl_handshake_timeout,
                                    ssl_shutdown_timeout=ssl_shutdown_timeout,
                                    start_serving=start_serving)

    create_server.__doc__ = _create_server.__doc__
    NetworkMixin.create_server = create_server
    del create_server


__all__ = ["NetworkMixin", "Server"]
