"""Stream transports: asyncio.Transport over the core's TCP and Unix transports.

Each transport is this Python object plus its Channel (aioswift._native, see
_native_io.c), the C half that holds the core's aios_transport_t. What
sockets and pipes share (ChannelTransport, ReadingMixin, WritingMixin) is
here once; the pipe transports (_pipes.py) are the same classes with
unix_events' differences. The hot
methods (write, writelines, is_closing, get_write_buffer_size) are the
Channel's own C methods, set on the instance, so asyncio code calling
transport.write runs no Python frame of ours; the others make one call into
the core through the Channel. Received bytes reach the protocol from C; the
events that are per connection (connected, EOF, lost, flow control) come
here, and follow selector_events._SelectorSocketTransport: a protocol
callback that raises goes to the loop's exception handler and closes the
transport (_fatal_error), an OSError only in debug mode.
"""

import logging
import socket
import warnings

from asyncio import constants, transports, trsock

from ._errors import exception_for_code

logger = logging.getLogger("asyncio")


class FdSocket:
    """A socket-like view of a descriptor the core owns: what
    asyncio.trsock.TransportSocket forwards to (fileno, family, getsockname,
    getsockopt, setsockopt, ...). It never closes the descriptor; once its
    owner lets go of it, fileno() is -1 and the calls fail with EBADF."""

    __slots__ = ("_fileno", "family", "type", "proto")

    def __init__(self, fd, family=None, type=None, proto=None):
        self._fileno = fd
        if family is None or type is None or proto is None:
            probe = socket.socket(fileno=fd)
            try:
                family, type, proto = probe.family, probe.type, probe.proto
            finally:
                probe.detach()
        self.family = _enum(socket.AddressFamily, family)
        self.type = _enum(socket.SocketKind, type)
        self.proto = proto

    def _forget(self):
        self._fileno = -1

    def fileno(self):
        fileno = self._fileno
        if callable(fileno):
            fileno = fileno()
        return fileno

    def _call(self, name, *args):
        fd = self.fileno()
        if fd < 0:
            raise OSError(9, "Bad file descriptor")
        sock = socket.socket(self.family, self.type, self.proto, fileno=fd)
        try:
            return getattr(sock, name)(*args)
        finally:
            sock.detach()

    def getsockname(self):
        return self._call("getsockname")

    def getpeername(self):
        return self._call("getpeername")

    def getsockopt(self, *args):
        return self._call("getsockopt", *args)

    def setsockopt(self, *args):
        return self._call("setsockopt", *args)

    def get_inheritable(self):
        return self._call("get_inheritable")

    def set_inheritable(self, inheritable):
        return self._call("set_inheritable", inheritable)

    def shutdown(self, how):
        return self._call("shutdown", how)

    def dup(self):
        return self._call("dup")

    def gettimeout(self):
        return 0

    def settimeout(self, value):
        if value == 0:
            return
        raise ValueError("settimeout(): only 0 timeout is allowed on transport sockets")

    def setblocking(self, flag):
        if not flag:
            return
        raise ValueError("setblocking(): transport sockets cannot be blocking")

    def __repr__(self):
        return f"<aioswift socket fd={self.fileno()} family={self.family!r} type={self.type!r}>"


def _enum(kind, value):
    try:
        return kind(value)
    except ValueError:
        return value


def report_fatal_error(transport, exc, message, quiet):
    """asyncio's _fatal_error report: an error the transport expects
    (`quiet`: an OSError for a socket, EIO for a read pipe) is logged at
    debug level only, any other goes to the exception handler."""
    if quiet:
        if transport._loop.get_debug():
            logger.debug("%r: %s", transport, message, exc_info=True)
    else:
        transport._loop.call_exception_handler({
            "message": message,
            "exception": exc,
            "transport": transport,
            "protocol": transport._protocol,
        })


class ChannelTransport:
    """What every transport over a core stream transport shares (sockets and
    pipes): the Channel, the protocol, closing and aborting, and the end
    (selector_events' _SelectorTransport; unix_events' pipe transports
    behave the same). Comes before asyncio's transport classes."""

    def _attach(self, chan, protocol):
        self._chan = chan
        self._fd = chan.fileno()        # for repr, after the close too
        chan.transport = self
        # The hot path: the Channel's C method, found before the class's.
        self.is_closing = chan.is_closing
        self._conn_lost = False       # connection_lost is on its way (asyncio's _conn_lost)
        self._lost_called = False
        self._protocol_connected = False
        self.set_protocol(protocol)

    def __repr__(self):
        info = [type(self).__name__]
        chan = self._chan
        if chan.lost:
            info.append("closed")
        elif chan.closing:
            info.append("closing")
        info.append(f"fd={self._fd}")
        if not chan.lost:
            info.extend(self._repr_state())
        return "<{}>".format(" ".join(info))

    def _repr_state(self):
        return []

    def _fileno(self):
        """The descriptor asyncio's transport would have (the caller's, if
        any: the core's is a duplicate), or -1."""
        return self._chan.fileno()

    def __del__(self, _warn=warnings.warn):
        if not getattr(self, "_lost_called", True):
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            chan = getattr(self, "_chan", None)
            if chan is not None and not chan.lost:
                chan.abort()
            self._release_resources()

    def _release_resources(self):
        """What the transport holds besides the core's (the caller's socket
        or pipe): let go of at connection_lost."""

    # -- asyncio.BaseTransport ----------------------------------------------

    def set_protocol(self, protocol):
        self._chan.set_protocol(protocol)
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._chan.is_closing()

    def close(self):
        if self._chan.closing:
            return
        if self._chan.close():
            # Nothing to send: connection_lost comes soon, as asyncio's.
            self._conn_lost = True
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self):
        self._force_close(None)

    # -- errors and the end ----------------------------------------------------

    def _fatal_error(self, exc, message="Fatal error on transport"):
        report_fatal_error(self, exc, message, quiet=isinstance(exc, OSError))
        self._force_close(exc)

    # A protocol callback the Channel called raised (data_received, ...).
    def _protocol_failed(self, exc, message):
        self._fatal_error(exc, message)

    def _force_close(self, exc):
        if self._conn_lost or self._chan.lost:
            return
        self._conn_lost = True
        self._chan.abort()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _io_eof(self):
        if self._loop.get_debug():
            logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if not keep_open:
            self.close()

    def _io_lost(self, status):
        # The core's connection_lost (the channel lets go of the core's
        # transport right after this). A close or abort of ours has
        # scheduled connection_lost already.
        self._lost_with(exception_for_code(status) if status else None)

    def _io_closing(self, status):
        # The core closed the connection on an error of a write (the Channel
        # saw it closing before any event said so): connection_lost is
        # queued now, as asyncio's _fatal_error queues it; the core's LOST
        # then finds it on its way.
        self._lost_with(exception_for_code(status))

    def _lost_with(self, exc):
        # Scheduled, never called from the event, as asyncio's _force_close
        # does: the core may hand over a connection's last bytes and its end
        # (a reset, say) in one batch, and what data_received scheduled (the
        # wake-up of a task reading them) must run before connection_lost.
        # aiohttp's request handler task relies on it.
        if self._conn_lost:
            return
        self._conn_lost = True
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        if self._lost_called:
            return
        self._lost_called = True
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            self._release_resources()
            self._protocol = None
            self._chan.detach()


class ReadingMixin:
    """pause_reading, resume_reading and is_reading on the Channel."""

    def is_reading(self):
        return self._chan.is_reading()

    def pause_reading(self):
        if self._chan.pause_reading() and self._loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        if self._chan.resume_reading() and self._loop.get_debug():
            logger.debug("%r resumes reading", self)


class WritingMixin:
    """The write side on the Channel, with asyncio's flow control of the
    protocol (_FlowControlMixin's, whose buffer is the core's). Comes
    before transports._FlowControlMixin."""

    def _attach_writer(self, chan):
        # The hot path: the Channel's C methods, found before the class's.
        self.write = chan.write
        self.writelines = chan.writelines
        self.get_write_buffer_size = chan.get_write_buffer_size

    def write(self, data):
        self._chan.write(data)

    def writelines(self, list_of_data):
        self._chan.writelines(list_of_data)

    def write_eof(self):
        self._chan.write_eof()

    def can_write_eof(self):
        return True

    def get_write_buffer_size(self):
        return self._chan.get_write_buffer_size()

    def get_write_buffer_limits(self):
        return self._chan.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        # asyncio's defaults and checks (_FlowControlMixin._set_write_buffer_limits).
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low
        self._chan.set_write_buffer_limits(high, low)

    def _set_write_buffer_limits(self, high=None, low=None):
        # _FlowControlMixin.__init__ calls it before the channel exists.
        chan = getattr(self, "_chan", None)
        if chan is None:
            transports._FlowControlMixin._set_write_buffer_limits(self, high, low)
        else:
            self.set_write_buffer_limits(high, low)

    # asyncio's _FlowControlMixin keeps it in a slot; here the channel does
    # (the C write path reads it). base_events' sendfile fallback reads it.
    @property
    def _protocol_paused(self):
        chan = self.__dict__.get("_chan")
        return chan.write_paused if chan is not None else False

    @_protocol_paused.setter
    def _protocol_paused(self, value):
        chan = self.__dict__.get("_chan")
        if chan is not None:
            chan.write_paused = value

    def _maybe_pause_protocol(self):
        chan = self._chan
        if chan.write_paused:
            return
        chan.write_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": "protocol.pause_writing() failed",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })

    def _maybe_resume_protocol(self):
        if self._chan.write_paused and self._chan.get_write_buffer_size() <= self._low_water:
            self._io_resume_writing()

    def _io_resume_writing(self):
        self._chan.write_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": "protocol.resume_writing() failed",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })


class SocketTransport(ChannelTransport, ReadingMixin, WritingMixin, transports._FlowControlMixin,
                      transports.Transport):
    """A TCP or Unix stream transport of the core (asyncio's
    _SelectorSocketTransport's behaviour)."""

    _start_tls_compatible = True
    # As asyncio's socket transports: loop.sendfile tries the native way
    # (the core's transport sendfile) and falls back.
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE

    def __init__(self, loop, chan, protocol, extra=None, server=None, sock=None):
        transports._FlowControlMixin.__init__(self, extra, loop)
        # The caller's socket (sock=), which the core has a duplicate of:
        # closed with the connection, as asyncio closes its transport's.
        self._sock = sock
        self._socket = trsock.TransportSocket(sock) if sock is not None else None
        self._server = server
        self._attach(chan, protocol)
        self._attach_writer(chan)
        extra = self._extra
        if "sockname" not in extra:
            extra["sockname"] = chan.sockname()
        if "peername" not in extra:
            extra["peername"] = chan.peername()
        if server is not None:
            server._attach(self)
        if sock is not None:
            # add_reader refuses the caller's descriptor (the core's
            # duplicate is found by the core).
            loop._fd_transports.add(self)

    def _fileno(self):
        sock = self._sock
        return sock.fileno() if sock is not None else self._chan.fileno()

    def _repr_state(self):
        chan = self._chan
        size = chan.get_write_buffer_size()
        return ["read=polling" if chan.is_reading() else "read=idle",
                f"write=<{'polling' if size else 'idle'}, bufsize={size}>"]

    def get_extra_info(self, name, default=None):
        if name == "socket":
            sock = self._socket
            if sock is None and not self._chan.lost:
                fd = self._chan.fileno()
                if fd >= 0:
                    sock = self._socket = trsock.TransportSocket(FdSocket(fd))
            if sock is not None:
                return sock
        return self._extra.get(name, default)

    def _release_resources(self):
        socket_view = self.__dict__.get("_socket")
        if socket_view is not None and isinstance(socket_view._sock, FdSocket):
            socket_view._sock._forget()
        sock = self.__dict__.get("_sock")
        if sock is not None:
            self._sock = None
            sock.close()
        server = self.__dict__.get("_server")
        if server is not None:
            self._server = None
            server._detach(self)


class TCPTransport(SocketTransport):
    """A TCP connection."""


class UnixTransport(SocketTransport):
    """A Unix socket connection."""


def connlost_warning(message):
    logger.warning(message)



__all__ = ["ChannelTransport", "ReadingMixin", "WritingMixin", "SocketTransport", "TCPTransport",
           "UnixTransport", "FdSocket"]
