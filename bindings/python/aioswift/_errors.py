"""Status codes and error objects of libaio-swift as Python exceptions: the one
place where they are mapped.

  AIOS_ECANCELLED           asyncio.CancelledError
  AIOS_ETIMEOUT             TimeoutError (asyncio.TimeoutError is the same class)
  AIOS_EINVALIDSTATE        asyncio.InvalidStateError
  AIOS_ECLOSED              LoopClosedError      (AioswiftError, RuntimeError)
  AIOS_ERUNNING             LoopRunningError     (AioswiftError, RuntimeError)
  AIOS_ENOLOOP              NoRunningLoopError   (AioswiftError, RuntimeError)
  AIOS_EWRONGTHREAD         WrongThreadError     (AioswiftError, RuntimeError)
  AIOS_EINVAL               InvalidArgumentError (AioswiftError, ValueError)
  AIOS_EWRONGLOOP           WrongLoopError       (AioswiftError, ValueError), as
                            asyncio raises ValueError for a future of another loop
  -errno                    OSError(errno, message): Python picks the subclass
                            (ConnectionResetError for ECONNRESET, ...)
  AIOS_EAI_*                socket.gaierror with the system's EAI_* number and
                            message, as socket.getaddrinfo raises it
  AIOS_EUSER with data      the Python exception the data carries
  any other code            AioswiftError, with .code and aios_strerror's message

The three asyncio exceptions are raised as the stock classes themselves, so
asyncio code that tests them by type keeps working.
"""

import asyncio
import socket

from ._runtime import NULL, box, discard, ffi, lib, text, unbox


def strerror(code):
    """aios_strerror(code): the message of any status code."""
    return text(lib.aios_strerror(code))


def err_name(code):
    """aios_err_name(code): "AIOS_ECANCELLED", "ECONNRESET", "UNKNOWN"."""
    return text(lib.aios_err_name(code))


# name ("EINVAL") -> code, for every AIOS_E* code of the header
codes = {name[len("AIOS_"):]: value
         for name, value in ffi.typeof("aios_errno_t").relements.items()
         if name != "AIOS_OK"}


class AioswiftError(Exception):
    """An error of libaio-swift: `code` is its status code (negative)."""

    def __init__(self, code, message=None):
        if message is None:
            message = strerror(code)
        super().__init__(message)
        self.code = code

    @property
    def name(self):
        return err_name(self.code)

    def __reduce__(self):
        return (type(self), (self.code, self.args[0] if self.args else None))


class LoopClosedError(AioswiftError, RuntimeError):
    """AIOS_ECLOSED: the event loop is closed."""


class LoopRunningError(AioswiftError, RuntimeError):
    """AIOS_ERUNNING: the event loop (or another one on this thread) is running."""


class NoRunningLoopError(AioswiftError, RuntimeError):
    """AIOS_ENOLOOP: no event loop is running."""


class WrongThreadError(AioswiftError, RuntimeError):
    """AIOS_EWRONGTHREAD: called from a thread that is not the loop's."""


class InvalidArgumentError(AioswiftError, ValueError):
    """AIOS_EINVAL: an invalid argument."""


class WrongLoopError(AioswiftError, ValueError):
    """AIOS_EWRONGLOOP: the object belongs to a different event loop."""


_CLASSES = {
    lib.AIOS_ECLOSED: LoopClosedError,
    lib.AIOS_ERUNNING: LoopRunningError,
    lib.AIOS_ENOLOOP: NoRunningLoopError,
    lib.AIOS_EWRONGTHREAD: WrongThreadError,
    lib.AIOS_EINVAL: InvalidArgumentError,
    lib.AIOS_EWRONGLOOP: WrongLoopError,
}

# Codes of the library's own are below this; above it, a negative code is -errno.
_OWN_CODES_BELOW = -3000


def exception_for_code(code, message=None):
    """The Python exception for status `code` (negative). `message` overrides
    the code's default message (aios_strerror)."""
    if code >= 0:
        raise ValueError(f"status {code} is not an error")
    if code == lib.AIOS_ECANCELLED:
        # asyncio's CancelledError carries the cancel message, or nothing.
        if not message or message == strerror(code):
            return asyncio.CancelledError()
        return asyncio.CancelledError(message)
    if message is None:
        message = strerror(code)
    if code == lib.AIOS_ETIMEOUT:
        return TimeoutError(message)
    if code == lib.AIOS_EINVALIDSTATE:
        return asyncio.InvalidStateError(message)
    if code == lib.AIOS_ENOSENDFILE:
        return asyncio.SendfileNotAvailableError(message)
    if code > _OWN_CODES_BELOW:
        return OSError(-code, message)
    gai = _gai_errno(code)
    if gai is not None:
        return socket.gaierror(gai, _gai_message(gai))
    return _CLASSES.get(code, AioswiftError)(code, message)


# AIOS_EAI_* codes -> the system's socket.EAI_* numbers (socket.gaierror's).
_GAI = {}
for _name, _value in codes.items():
    if _name.startswith("EAI_") and hasattr(socket, _name):
        _GAI[_value] = getattr(socket, _name)
_GAI.setdefault(codes.get("EAI_CANCELED"), getattr(socket, "EAI_AGAIN", -3))
del _name, _value


def _gai_errno(code):
    return _GAI.get(code)


def _gai_message(number):
    from . import _native
    return _native.gai_strerror(number)


def check(status):
    """Raise the exception for a negative status; return the status otherwise."""
    if status < 0:
        raise exception_for_code(status)
    return status


def exception_from_error(error):
    """The Python exception for an aios_error_t* (borrowed). A user error made
    by error_from_exception gives back the very exception it carries."""
    kind = lib.aios_error_kind(error)
    if kind < 0:
        return exception_for_code(kind)
    if kind == lib.AIOS_ERROR_USER:
        data = lib.aios_error_user_data(error)
        if data != NULL:
            exc = unbox(data, None)
            if exc is not None:
                return exc
    code = lib.aios_error_code(error)
    message = text(lib.aios_error_message(error))
    if kind == lib.AIOS_ERROR_OS:
        number = lib.aios_error_os_errno(error)
        if number > 0:
            return OSError(number, message if message is not None else strerror(-number))
    return exception_for_code(code, message)


def _describe(exc):
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def error_from_exception(exc, extras=None):
    """A new AIOS_EUSER error (one reference, the caller's) carrying `exc`;
    exception_from_error gives `exc` back. The error owns its reference to
    `exc` and releases it through the destructor when it is freed. `extras`
    (a dict or None) travels with it, for the exception handler's context."""
    data = box(exc, extras)
    out = ffi.new("aios_error_t **")
    status = lib.aios_error_new_user(_describe(exc).encode("utf-8", "replace"), data,
                                     lib.aioswift_py_release, out)
    if status < 0:
        discard(data)
        raise exception_for_code(status)
    return out[0]


# code -> name, like errno.errorcode, for the library's own codes
errorcode = {value: name for name, value in codes.items()}

__all__ = [
    "AioswiftError", "LoopClosedError", "LoopRunningError", "NoRunningLoopError",
    "WrongThreadError", "InvalidArgumentError", "WrongLoopError",
    "exception_for_code", "exception_from_error", "error_from_exception",
    "strerror", "err_name", "codes", "errorcode", "check",
]
