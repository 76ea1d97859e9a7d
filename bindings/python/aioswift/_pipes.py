"""Pipe transports: connect_read_pipe and connect_write_pipe on the core's
(aios_connect_read_pipe, aios_connect_write_pipe), with unix_events'
_UnixReadPipeTransport and _UnixWritePipeTransport behaviour.

A pipe transport of the core is a stream transport: these are the socket
transports' classes (_transport.py: the Channel, its batched events through
_native's io_ready, closing, flow control) with what asyncio's pipes do
differently:

  - a read pipe is closed at EOF: eof_received and connection_lost come
    soon, whatever eof_received answers; data_received that raises is
    reported as an exception of asyncio's _read_ready handle and reading
    goes on; an EIO read error (a pty whose child went away) is not;
  - a write pipe's close is write_eof, and a write after either is dropped
    (counted, logged from the fifth on), not an error; when its reader goes
    away it closes (BrokenPipeError if bytes were left);
  - the core owns a duplicate of the pipe's descriptor; the Python file
    object given is get_extra_info('pipe') and is closed with the transport,
    as asyncio closes it.
"""

import errno
import os
import stat
import warnings

from asyncio import transports

from ._errors import exception_for_code
from ._network import Connecting
from ._runtime import lib
from ._transport import ChannelTransport, ReadingMixin, WritingMixin, logger, report_fatal_error


class PipeMixin:
    """repr and the end of a pipe transport as unix_events has them: its
    state is the pipe (file object)'s; a child's pipe (no file object here)
    is open until its connection_lost."""

    def _pipe_init(self, loop, chan, pipe):
        self._pipe = pipe
        self._extra["pipe"] = pipe
        chan.pipe = True
        self._pipe_given = pipe is not None
        if pipe is not None:
            self._fd = pipe.fileno()
        # Not registered for add_reader's check: asyncio's pipe transports
        # are not among its loop's _transports either.

    def _is_open(self):
        if self._pipe_given:
            return self._pipe is not None
        return not self._lost_called

    def __repr__(self):
        info = [type(self).__name__]
        is_open = self._is_open()
        if not is_open:
            info.append("closed")
        elif self._conn_lost or (self._chan.closing and not self._chan.lost):
            info.append("closing")
        info.append(f"fd={self._fd}")
        if is_open and not self._loop.is_closed():
            info.extend(self._repr_state())
        else:
            info.append("open" if is_open else "closed")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn=warnings.warn):
        chan = getattr(self, "_chan", None)
        if chan is not None and not chan.lost and not getattr(self, "_lost_called", True):
            chan.abort()
        pipe = getattr(self, "_pipe", None)
        if pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            pipe.close()

    def _fileno(self):
        pipe = self._pipe
        return pipe.fileno() if pipe is not None else self._chan.fileno()

    def _release_resources(self):
        pipe = self.__dict__.get("_pipe")
        if pipe is not None:
            self._pipe = None
            pipe.close()


class ReadPipeTransport(PipeMixin, ChannelTransport, ReadingMixin, transports.ReadTransport):
    """The read end of a pipe, a FIFO, a socket or a character device."""

    max_size = 256 * 1024

    def __init__(self, loop, chan, protocol, pipe=None, extra=None):
        transports.ReadTransport.__init__(self, extra)
        self._loop = loop
        self._attach(chan, protocol)
        self._pipe_init(loop, chan, pipe)

    def _repr_state(self):
        return ["polling" if self._chan.is_reading() else "idle"]

    def _protocol_failed(self, exc, message):
        # asyncio calls data_received from its reader's handle: what it
        # raises is that handle's, and the pipe stays open.
        self._loop.call_exception_handler({
            "message": f"Exception in callback {type(self).__name__}._read_ready()",
            "exception": exc,
            "transport": self,
            "protocol": self._protocol,
        })

    def _fatal_error(self, exc, message="Fatal error on pipe transport"):
        report_fatal_error(self, exc, message, quiet=isinstance(exc, OSError) and exc.errno == errno.EIO)
        self._force_close(exc)

    def _io_eof(self):
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._chan.close()
        if self._conn_lost:
            return
        self._conn_lost = True
        self._loop.call_soon(self._protocol.eof_received)
        self._loop.call_soon(self._call_connection_lost, None)

    def _io_lost(self, status):
        if status and not self._conn_lost:
            # A read error: asyncio's _fatal_error, from the core's close.
            exc = exception_for_code(status)
            if exc.errno != errno.EIO:
                self._loop.call_exception_handler({
                    "message": "Fatal read error on pipe transport",
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                })
            self._lost_with(exc)
            return
        super()._io_lost(status)



class WritePipeTransport(PipeMixin, ChannelTransport, WritingMixin, transports._FlowControlMixin,
                         transports.WriteTransport):
    """The write end of a pipe, a FIFO, a socket or a character device."""

    def __init__(self, loop, chan, protocol, pipe=None, extra=None):
        transports._FlowControlMixin.__init__(self, extra, loop)
        self._attach(chan, protocol)
        self._attach_writer(chan)
        self._pipe_init(loop, chan, pipe)

    def _repr_state(self):
        size = self._chan.get_write_buffer_size()
        return ["polling" if size else "idle", f"bufsize={size}"]

    def write_eof(self):
        if self._chan.closing:
            return
        self._chan.write_eof()
        if self._chan.get_write_buffer_size() == 0 and not self._conn_lost:
            # Nothing to send: connection_lost comes soon, as asyncio's.
            self._conn_lost = True
            self._loop.call_soon(self._call_connection_lost, None)

    def close(self):
        # asyncio's write pipe closes as write_eof does.
        self.write_eof()

    def _fatal_error(self, exc, message="Fatal error on pipe transport"):
        ChannelTransport._fatal_error(self, exc, message)


class PipeConnecting(Connecting):
    """A pipe on its way: its protocol is made already (asyncio makes it
    before the transport)."""

    def __init__(self, loop, protocol, transport_class, pipe):
        super().__init__(loop, None, transport_class)
        self.protocol = protocol
        self.pipe = pipe

    def connected(self, chan):
        self.transport = self.app_transport = self.transport_class(self.loop, chan, self.protocol,
                                                                   pipe=self.pipe)
        self.loop._call_protocol(self.protocol.connection_made, self.transport)


def _check_pipe(fileno, message):
    mode = os.fstat(fileno).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        raise ValueError(message)


class PipesMixin:
    """connect_read_pipe and connect_write_pipe of aioswift.Loop."""

    async def connect_read_pipe(self, protocol_factory, pipe):
        """asyncio's connect_read_pipe: `pipe` (a file object) read by the
        core, its bytes to the protocol."""
        protocol = protocol_factory()
        transport = await self._connect_pipe(protocol, pipe, ReadPipeTransport,
                                             lib.aios_connect_read_pipe,
                                             "Pipe transport is for pipes/sockets only.")
        if self._debug:
            logger.debug("Read pipe %r connected: (%r, %r)", pipe.fileno(), transport, protocol)
        return transport, protocol

    async def connect_write_pipe(self, protocol_factory, pipe):
        """asyncio's connect_write_pipe: writes to `pipe` (a file object)
        go through the core's write buffer, with flow control."""
        protocol = protocol_factory()
        transport = await self._connect_pipe(
            protocol, pipe, WritePipeTransport, lib.aios_connect_write_pipe,
            "Pipe transport is only for pipes, sockets and character devices")
        if self._debug:
            logger.debug("Write pipe %r connected: (%r, %r)", pipe.fileno(), transport, protocol)
        return transport, protocol

    async def _connect_pipe(self, protocol, pipe, transport_class, connect, message):
        fileno = pipe.fileno()
        _check_pipe(fileno, message)
        self._check_closed()
        os.set_blocking(fileno, False)

        def start(table, out):
            # The core owns a duplicate (from a successful call on); `pipe`
            # is closed with the transport.
            fd = os.dup(fileno)
            status = connect(self._ptr, table, fd, out)
            if status < 0:
                os.close(fd)
            return status

        transport, _ = await self._connect(start, PipeConnecting(self, protocol, transport_class,
                                                                 pipe))
        return transport


__all__ = ["ReadPipeTransport", "WritePipeTransport", "PipesMixin"]
