"""aioswift: asyncio's event loop from libaio-swift (Swift on libuv), through
its C ABI.

This first cut proves the ABI from Python:

    import aioswift
    loop = aioswift.Loop()
    loop.call_later(0.1, print, "later")
    print(loop.run_until_complete(loop.sleep(0.2, "done")))
    loop.close()

Loop wraps aios_loop_t (call_soon, call_later, call_at, call_soon_threadsafe,
time, run_forever, run_until_complete, stop, close, exception handlers, debug
mode); CFuture wraps aios_future_t; status codes map to Python exceptions in
aioswift._errors. The drop-in asyncio event loop comes later.
"""

from ._runtime import ffi, lib, text as _text
from ._errors import (AioswiftError, InvalidArgumentError, LoopClosedError,
                      LoopRunningError, NoRunningLoopError, WrongLoopError,
                      WrongThreadError, err_name, errorcode, exception_for_code,
                      strerror)
from ._handles import Handle, TimerHandle
from ._future import CFuture
from ._loop import Loop

__version__ = "0.1.0"


def version():
    """The version of the libaio-swift library loaded, "MAJOR.MINOR.PATCH"."""
    return _text(lib.aios_version_string())


def version_info():
    """The loaded library's version as a (major, minor, patch) tuple."""
    hexversion = lib.aios_version()
    return (hexversion >> 16) & 0xFF, (hexversion >> 8) & 0xFF, hexversion & 0xFF


_OBJECT_TYPES = {
    "loop": lib.AIOS_OBJECT_LOOP,
    "handle": lib.AIOS_OBJECT_HANDLE,
    "future": lib.AIOS_OBJECT_FUTURE,
    "task": lib.AIOS_OBJECT_TASK,
    "error": lib.AIOS_OBJECT_ERROR,
    "runner": lib.AIOS_OBJECT_RUNNER,
}


def live_objects():
    """How many objects of each type the library holds alive right now
    (aios_live_objects): {"loop": n, "handle": n, "future": n, ...}."""
    return {name: lib.aios_live_objects(kind) for name, kind in _OBJECT_TYPES.items()}


__all__ = [
    "Loop", "Handle", "TimerHandle", "CFuture",
    "AioswiftError", "LoopClosedError", "LoopRunningError", "NoRunningLoopError",
    "WrongThreadError", "InvalidArgumentError", "WrongLoopError",
    "exception_for_code", "strerror", "err_name", "errorcode",
    "version", "version_info", "live_objects",
]
