"""Loop: a libaio-swift event loop (aios_loop_t) driven from Python.

This is the first layer of the binding, the C loop with asyncio's names:
call_soon, call_later, call_at, call_soon_threadsafe, time, run_forever,
run_until_complete (of a CFuture), stop, close, debug mode and exception
handlers. The full asyncio.AbstractEventLoop, with Python's own Task and
Future on top, comes later.

Exceptions raised by Python callbacks never reach C. An Exception is
reported as asyncio reports it ("Exception in callback ..."): it travels
through the C loop's exception handling (aios_loop_call_exception_handler)
as an AIOS_EUSER error carrying the exception object, and comes back to
Python through the handler this loop installs in C, which calls
call_exception_handler with a context dict. SystemExit and KeyboardInterrupt
stop the loop and are raised again by run_forever / run_until_complete.
"""

import contextvars
import inspect
import itertools
import logging
import traceback
import warnings
import weakref

from ._errors import check, error_from_exception, exception_from_error
from ._future import CFuture, boxed_value, python_value
from ._handles import Handle, TimerHandle, schedule
from ._runtime import (NULL, address, box_extras, discard, ffi, lib,
                       set_running_loop, text)

logger = logging.getLogger("aioswift")

# Loops by the key their C exception handler gets as its argument.
_loops = weakref.WeakValueDictionary()
_keys = itertools.count(1)


def _check_callback(callback, method):
    if inspect.iscoroutine(callback) or inspect.iscoroutinefunction(callback):
        raise TypeError(f"coroutines cannot be used with {method}()")
    if not callable(callback):
        raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")


class Loop:
    """An event loop of libaio-swift, bound to the thread that creates it."""

    def __init__(self):
        out = ffi.new("aios_loop_t **")
        check(lib.aios_loop_new(out))
        ptr = out[0]
        key = next(_keys)
        status = lib.aios_loop_set_exception_handler(
            ptr, lib.aioswift_py_exception_handler, ffi.cast("void *", key))
        if status < 0:
            lib.aios_loop_close(ptr)
            lib.aios_loop_unref(ptr)
            check(status)
        self._ptr = ptr
        self._key = key
        # address of a cffi handle -> the handle, for every Python callback C
        # may still call (Handle, or a CFuture's done-callback registration)
        self._pending = {}
        self._exception_handler = None
        self._interrupted = None
        self._slow_callback_duration = 0.1
        _loops[key] = self

    def __del__(self):
        ptr = getattr(self, "_ptr", NULL)
        if ptr == NULL:
            return
        self._ptr = NULL
        _loops.pop(self._key, None)
        if lib.aios_loop_is_closed(ptr) == 0:
            warnings.warn(f"unclosed event loop <aioswift.Loop at {id(self):#x}>",
                          ResourceWarning, source=self)
            if lib.aios_loop_is_running(ptr) == 0:
                lib.aios_loop_close(ptr)    # fails harmlessly on another thread
        lib.aios_loop_set_exception_handler(ptr, NULL, NULL)
        lib.aios_loop_unref(ptr)

    def __repr__(self):
        if self._ptr == NULL:
            return "<aioswift.Loop freed>"
        return (f"<aioswift.Loop running={self.is_running()} "
                f"closed={self.is_closed()} debug={self.get_debug()}>")

    # -- scheduling -------------------------------------------------------

    def call_soon(self, callback, *args, context=None):
        """Call callback(*args) on a later iteration, after the callbacks
        already scheduled (FIFO). Returns a Handle."""
        _check_callback(callback, "call_soon")
        ptr = self._ptr
        return schedule(self, Handle, callback, args, _context(context),
                        lambda cb, arg, out: lib.aios_loop_call_soon(ptr, cb, arg, NULL, out))

    def call_soon_threadsafe(self, callback, *args, context=None):
        """call_soon from any thread; wakes the loop if it waits. The Handle
        may be cancelled on the loop's thread only."""
        _check_callback(callback, "call_soon_threadsafe")
        ptr = self._ptr
        return schedule(self, Handle, callback, args, _context(context),
                        lambda cb, arg, out: lib.aios_loop_call_soon_threadsafe(ptr, cb, arg, NULL, out))

    def call_later(self, delay, callback, *args, context=None):
        """Call callback(*args) once `delay` seconds have passed. Returns a
        TimerHandle."""
        if delay is None:
            raise TypeError("delay must not be None")
        _check_callback(callback, "call_later")
        ptr, delay = self._ptr, float(delay)
        return schedule(self, TimerHandle, callback, args, _context(context),
                        lambda cb, arg, out: lib.aios_loop_call_later(ptr, delay, cb, arg, NULL, out))

    def call_at(self, when, callback, *args, context=None):
        """Call callback(*args) at loop time `when` (the clock of time())."""
        if when is None:
            raise TypeError("when cannot be None")
        _check_callback(callback, "call_at")
        ptr, when = self._ptr, float(when)
        return schedule(self, TimerHandle, callback, args, _context(context),
                        lambda cb, arg, out: lib.aios_loop_call_at(ptr, when, cb, arg, NULL, out))

    def time(self):
        """The loop's monotonic clock, in seconds."""
        out = ffi.new("double *")
        check(lib.aios_loop_time(self._ptr, out))
        return out[0]

    # -- running ----------------------------------------------------------

    def _run_c(self, run):
        previous = set_running_loop(self)
        try:
            status = run()
        finally:
            set_running_loop(previous)
        interrupted, self._interrupted = self._interrupted, None
        if interrupted is not None:
            raise interrupted
        return status

    def _interrupt(self, exc):
        """A callback raised SystemExit or KeyboardInterrupt: stop, and let
        run_forever / run_until_complete raise it."""
        if self._interrupted is None:
            self._interrupted = exc
        lib.aios_loop_stop(self._ptr)

    def run_forever(self):
        """Run until stop(). A stop() before the call runs one iteration."""
        ptr = self._ptr
        check(self._run_c(lambda: lib.aios_loop_run_forever(ptr)))

    def run_until_complete(self, future):
        """Run until the CFuture is done; return its result or raise its
        exception."""
        if not isinstance(future, CFuture):
            raise TypeError(f"aioswift.Loop.run_until_complete() takes a CFuture, "
                            f"got {future!r}")
        ptr, fptr = self._ptr, future._ptr
        status = self._run_c(lambda: lib.aios_loop_run_until_complete(ptr, fptr))
        if not future.done():
            if status == lib.AIOS_EINVALIDSTATE:
                raise RuntimeError("Event loop stopped before Future completed.")
            check(status)
            raise RuntimeError(f"run_until_complete returned {status} for a pending future")
        # The run's status is either the future's own outcome or an error of
        # the loop itself (closed, running, wrong thread or loop).
        value = ffi.new("void **")
        outcome = lib.aios_future_result(fptr, value)
        if outcome != status:
            check(status)
        if outcome == 0:
            return python_value(value[0])
        raise future._failure(outcome)

    def stop(self):
        check(lib.aios_loop_stop(self._ptr))

    def close(self):
        """Close the loop: its pending callbacks and timers are dropped."""
        check(lib.aios_loop_close(self._ptr))
        pending, self._pending = self._pending, {}
        for cd in pending.values():
            ffi.from_handle(cd)._forget()

    def is_running(self):
        return bool(check(lib.aios_loop_is_running(self._ptr)))

    def is_closed(self):
        return bool(check(lib.aios_loop_is_closed(self._ptr)))

    # -- debug ------------------------------------------------------------

    def set_debug(self, enabled):
        check(lib.aios_loop_set_debug(self._ptr, 1 if enabled else 0))

    def get_debug(self):
        return bool(check(lib.aios_loop_get_debug(self._ptr)))

    @property
    def slow_callback_duration(self):
        """In debug mode, callbacks slower than this many seconds are reported."""
        return self._slow_callback_duration

    @slow_callback_duration.setter
    def slow_callback_duration(self, seconds):
        seconds = float(seconds)
        check(lib.aios_loop_set_slow_callback_duration(self._ptr, seconds))
        self._slow_callback_duration = seconds

    # -- futures ----------------------------------------------------------

    def create_cfuture(self):
        """A new pending CFuture on this loop."""
        out = ffi.new("aios_future_t **")
        check(lib.aios_future_new(self._ptr, out))
        return CFuture(self, out[0])

    def sleep(self, delay, result=None):
        """A CFuture that gets `result` after `delay` seconds (delay <= 0: one
        that is already done). Cancelling it cancels the timer."""
        value, destructor = boxed_value(result)
        out = ffi.new("aios_future_t **")
        status = lib.aios_sleep(self._ptr, float(delay), value, destructor, out)
        if status < 0:
            if value != NULL:
                discard(value)
            check(status)
        return CFuture(self, out[0], value if value != NULL else None)

    # -- exception handling -----------------------------------------------

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        """handler(loop, context) receives what nobody handled; None restores
        default_exception_handler."""
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context to the "aioswift" logger, with the traceback of its
        exception if it has one."""
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        exc_info = False
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        lines = [message]
        for key in sorted(k for k in context if k not in ("message", "exception")):
            lines.append(f"{key}: {context[key]!r}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        handler = self._exception_handler
        if handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    "message": "Unhandled error in exception handler",
                    "exception": exc,
                    "context": context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler while handling "
                             "an error in the custom exception handler", exc_info=True)

    def _report_error(self, exc, message, extras):
        """Report an exception raised by Python code the loop called. It goes
        through the C loop's handler as an AIOS_EUSER error that carries it,
        and comes back to call_exception_handler with `extras` in the context;
        if C refuses it (a closed loop), straight to call_exception_handler."""
        try:
            error = error_from_exception(exc, extras)
        except Exception:
            error = None
        if error is not None:
            try:
                status = lib.aios_loop_call_exception_handler(
                    self._ptr, message.encode("utf-8", "replace"), error)
            finally:
                lib.aios_error_unref(error)
            if status == 0:
                return
        self.call_exception_handler({"message": message, "exception": exc, **extras})


def _context(context):
    return context if context is not None else contextvars.copy_context()


@ffi.def_extern()
def aioswift_py_exception_handler(loop_ptr, c_context, arg):
    # C's report of an unhandled error (ours coming back, or the library's
    # own: an error never retrieved from a future, a slow callback). Nothing
    # may escape into C.
    loop = None
    message, error = c_context.message, c_context.error
    try:
        loop = _loops.get(address(arg))
        context = {"message": text(message) or "Unhandled exception in event loop"}
        if error != NULL:
            context["exception"] = exception_from_error(error)
            if lib.aios_error_kind(error) == lib.AIOS_ERROR_USER:
                context.update(box_extras(lib.aios_error_user_data(error)) or {})
        if loop is None:
            logger.error("%s (its aioswift.Loop is gone)", context["message"],
                         exc_info=context.get("exception"))
        else:
            loop.call_exception_handler(context)
    except (SystemExit, KeyboardInterrupt) as exc:
        if loop is not None and lib.aios_loop_is_running(loop._ptr) == 1:
            loop._interrupt(exc)
        else:
            traceback.print_exc()
    except BaseException:
        traceback.print_exc()


__all__ = ["Loop"]
