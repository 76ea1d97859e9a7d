"""add_reader, add_writer, remove_reader and remove_writer on the core's
descriptor watchers (aios_loop_add_reader, _add_writer), with
selector_events' rules: one reader and one writer per descriptor, adding
again replaces (and cancels) the one there, remove says whether there was
one, a descriptor that a transport of the loop uses is refused with
RuntimeError, a file object is taken by its fileno(). The callback runs as
a Handle with its arguments at each iteration the descriptor is ready.

The core watches a duplicate of the descriptor, so closing it under a
watcher is harmless: the watcher goes quietly (no more callbacks), and
remove_reader still answers True, as asyncio's selector still holds it.
(libuv aborts the process when epoll refuses a descriptor it watches, as
it does one closed, or reused by a regular file.) One difference follows:
the duplicate keeps the file open until the watcher is removed (or the
loop closes), so a socket's peer sees it closed only then, where with
asyncio it sees the close at once.
A regular file is PermissionError, as epoll refuses it with asyncio.
"""

import sys

from asyncio import format_helpers

from ._errors import InvalidArgumentError

WATCH_READER = 0
WATCH_WRITER = 1


def _fileobj_to_fd(fileobj):
    """selectors' _fileobj_to_fd: an int, or a file object's fileno()."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class WatchersMixin:
    """The descriptor watchers of aioswift.Loop."""

    def _transport_using(self, fd):
        """The open transport of this loop on descriptor `fd`, or None."""
        transport = self._core.transport_using(fd) if not self.is_closed() else None
        if transport is None:
            for other in list(self._fd_transports):
                if other._fileno() == fd:
                    transport = other
                    break
        return transport

    def _ensure_fd_no_transport(self, fd):
        fileno = fd
        if not isinstance(fileno, int):
            try:
                fileno = int(fileno.fileno())
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"Invalid file object: {fd!r}") from None
        transport = self._transport_using(fileno)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(f"File descriptor {fd!r} is used by transport {transport!r}")

    def _add_watch(self, kind, fd, callback, args):
        self._check_closed()
        fileno = _fileobj_to_fd(fd)
        try:
            handle = self._core.add_watch(kind, fileno, callback, *args)
        except InvalidArgumentError:
            # The core's own check: a transport of the loop uses it.
            raise RuntimeError(f"File descriptor {fd!r} is used by transport "
                               f"{self._transport_using(fileno)!r}") from None
        if self._debug:
            handle._source_traceback = format_helpers.extract_stack(sys._getframe(2))
        return handle

    def _remove_watch(self, kind, fd):
        if self.is_closed():
            return False
        return self._core.remove_watch(kind, _fileobj_to_fd(fd))

    # selector_events' private halves, which transports and child watchers
    # of asyncio's call (they skip the transport check); they return the
    # Handle, as asyncio's do.
    def _add_reader(self, fd, callback, *args):
        return self._add_watch(WATCH_READER, fd, callback, args)

    def _add_writer(self, fd, callback, *args):
        return self._add_watch(WATCH_WRITER, fd, callback, args)

    def _remove_reader(self, fd):
        return self._remove_watch(WATCH_READER, fd)

    def _remove_writer(self, fd):
        return self._remove_watch(WATCH_WRITER, fd)

    def add_reader(self, fd, callback, *args):
        """Call callback(*args) whenever `fd` (a descriptor or a file
        object) is readable."""
        self._ensure_fd_no_transport(fd)
        self._add_watch(WATCH_READER, fd, callback, args)

    def remove_reader(self, fd):
        """Stop watching `fd` for reading; True if it was watched."""
        self._ensure_fd_no_transport(fd)
        return self._remove_watch(WATCH_READER, fd)

    def add_writer(self, fd, callback, *args):
        """Call callback(*args) whenever `fd` is writable."""
        self._ensure_fd_no_transport(fd)
        self._add_watch(WATCH_WRITER, fd, callback, args)

    def remove_writer(self, fd):
        """Stop watching `fd` for writing; True if it was watched."""
        self._ensure_fd_no_transport(fd)
        return self._remove_watch(WATCH_WRITER, fd)


__all__ = ["WatchersMixin"]
