"""Handle and TimerHandle: Python callbacks scheduled on the C loop.

A handle's callback reaches C as (aioswift_py_callback, arg), `arg` being a
cffi handle to the Python Handle. That cffi handle is kept in the loop's
`_pending` dict, keyed by its address, from scheduling until the callback ran
or was cancelled (or the loop was closed): the C API has no destructor for
callback arguments, so the Python side drops its references itself at those
points. The C handle (aios_handle_t) is held for the same span.
"""

import functools
import reprlib
import threading

from ._errors import check
from ._runtime import NULL, address, ffi, lib, lost_callback, running_loop

# Guards Handle._c, which call_soon_threadsafe sets on its caller's thread while
# the loop's thread may already run (and release) the handle.
_c_lock = threading.Lock()


def format_callback(callback, args):
    """`name(arg, ...)` for reprs and error messages."""
    if isinstance(callback, functools.partial):
        args = callback.args + tuple(args)
        callback = callback.func
    name = (getattr(callback, "__qualname__", None)
            or getattr(callback, "__name__", None) or repr(callback))
    if args is None:
        return name
    return f"{name}({', '.join(reprlib.repr(a) for a in args)})"


class Handle:
    """A callback scheduled by call_soon or call_soon_threadsafe
    (asyncio.Handle's surface: cancel, cancelled, get_context)."""

    def __init__(self, loop, callback, args, context):
        self._loop = loop
        self._callback = callback
        self._args = args
        self._context = context
        self._cancelled = False
        self._finished = False      # ran, cancelled or dropped by close
        self._key = None            # address of the cffi handle in loop._pending
        self._c = None              # aios_handle_t *, one reference
        self._repr = format_callback(callback, args)

    # -- attachment to C -------------------------------------------------

    def _attach(self, c_handle):
        """Take the reference C gave; release it at once if the callback
        already ran (a threadsafe call on a loop that was quick)."""
        with _c_lock:
            if not self._finished:
                self._c = c_handle
                return
        lib.aios_handle_unref(c_handle)

    def _drop_c(self):
        with _c_lock:
            c, self._c = self._c, None
            self._finished = True
        if c is not None:
            lib.aios_handle_unref(c)

    def _forget(self):
        """The loop will never call us (cancelled or closed): drop everything."""
        self._callback = self._args = self._context = None
        self._drop_c()

    # -- asyncio.Handle --------------------------------------------------

    def cancel(self):
        if self._cancelled:
            return
        c = self._c
        if c is not None:
            check(lib.aios_handle_cancel(c))
        self._cancelled = True
        if self._key is not None:
            self._loop._pending.pop(self._key, None)
        self._forget()

    def cancelled(self):
        c = self._c
        if c is not None:
            return bool(check(lib.aios_handle_cancelled(c)))
        return self._cancelled

    def get_context(self):
        return self._context

    def __repr__(self):
        state = " cancelled" if self._cancelled else ""
        return f"<{type(self).__name__}{state} {self._repr}>"

    # -- called by the trampoline -----------------------------------------

    def _run(self):
        callback, args, context = self._callback, self._args, self._context
        self._callback = self._args = self._context = None
        self._drop_c()
        if callback is None:
            return
        try:
            context.run(callback, *args)
        except (SystemExit, KeyboardInterrupt) as exc:
            self._loop._interrupt(exc)
        except BaseException as exc:
            self._loop._report_error(exc, f"Exception in callback {self._repr}",
                                     {"handle": self})


class TimerHandle(Handle):
    """A callback scheduled by call_later or call_at (asyncio.TimerHandle):
    when() is its deadline in loop time."""

    def __init__(self, loop, callback, args, context):
        super().__init__(loop, callback, args, context)
        self._when = None

    def _attach(self, c_handle):
        when = ffi.new("double *")
        status = lib.aios_handle_when(c_handle, when)
        super()._attach(c_handle)
        check(status)
        self._when = when[0]

    def when(self):
        return self._when

    def __repr__(self):
        state = " cancelled" if self._cancelled else ""
        return f"<TimerHandle{state} when={self._when} {self._repr}>"


def run_pending(arg):
    """Runs the callback registered under `arg` on the running loop. Never
    raises into C: the callback's _run reports its exceptions itself."""
    loop = running_loop()
    cd = loop._pending.pop(address(arg), None) if loop is not None else None
    if cd is None:
        lost_callback(arg)
        return
    ffi.from_handle(cd)._run()


@ffi.def_extern()
def aioswift_py_callback(arg):
    run_pending(arg)


def schedule(loop, cls, callback, args, context, start):
    """Create a `cls` handle and schedule it with `start(c_callback, arg, out)`,
    one of the aios_loop_call_* functions with its leading arguments bound."""
    handle = cls(loop, callback, args, context)
    cd = ffi.new_handle(handle)
    key = address(cd)
    handle._key = key
    loop._pending[key] = cd            # before C may call it (threadsafe)
    out = ffi.new("aios_handle_t **")
    status = start(lib.aioswift_py_callback, cd, out)
    if status < 0:
        loop._pending.pop(key, None)
        handle._forget()
        check(status)
    if out[0] != NULL:
        try:
            handle._attach(out[0])
        except BaseException:
            handle.cancel()
            raise
    return handle
