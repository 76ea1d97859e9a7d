"""aioswift: asyncio's event loop from libaio-swift (Swift on libuv), through
its C ABI, as uvloop is libuv's:

    import aioswift
    aioswift.run(main())                                   # or:
    asyncio.run(main(), loop_factory=aioswift.new_event_loop)   # 3.12+
    asyncio.Runner(loop_factory=aioswift.new_event_loop)
    aioswift.install()    # aioswift's EventLoopPolicy becomes asyncio's

Loop is an asyncio.AbstractEventLoop whose scheduling (call_soon,
call_later, call_at, call_soon_threadsafe, run_forever) is the core's;
asyncio's own Task and Future run on it, and so do asyncio's streams and
TLS: TCP and Unix connections, servers, datagrams, pipes, subprocesses,
signals, descriptor watchers and name resolution are the core's.

Also here: CFuture, an awaitable future of the C runtime, and CTask, a C
task seen from Python (loop.create_cfuture(), loop.sleep_cfuture(), and for
C code on the same loop loop.aios_loop, loop.wrap_cfuture() and
loop.as_cfuture()); status codes
mapped to Python exceptions (aioswift._errors); version() and live_objects().
"""

from ._runtime import ffi, lib, text as _text
from ._errors import (AioswiftError, InvalidArgumentError, LoopClosedError,
                      LoopRunningError, NoRunningLoopError, WrongLoopError,
                      WrongThreadError, err_name, errorcode, exception_for_code,
                      strerror)
from ._native import Handle, TimerHandle
from ._future import CFuture, CTask
from ._loop import Loop
from ._policy import EventLoopPolicy, install, new_event_loop, run

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
    "transport": lib.AIOS_OBJECT_TRANSPORT,
    "server": lib.AIOS_OBJECT_SERVER,
    "stream": lib.AIOS_OBJECT_STREAM,
    "subprocess": lib.AIOS_OBJECT_SUBPROCESS,
}


def live_objects():
    """How many objects of each type the library holds alive right now
    (aios_live_objects): {"loop": n, "handle": n, "future": n, ...}."""
    return {name: lib.aios_live_objects(kind) for name, kind in _OBJECT_TYPES.items()}


__all__ = [
    "Loop", "EventLoopPolicy", "new_event_loop", "install", "run",
    "Handle", "TimerHandle", "CFuture", "CTask",
    "AioswiftError", "LoopClosedError", "LoopRunningError", "NoRunningLoopError",
    "WrongThreadError", "InvalidArgumentError", "WrongLoopError",
    "exception_for_code", "strerror", "err_name", "errorcode",
    "version", "version_info", "live_objects",
]
