"""CFuture: a libaio-swift future (aios_future_t) seen from Python.

Its result is a Python object put into C as a box (see _runtime) with the
destructor aioswift_py_release, which C calls exactly once when the future is
freed. Its exception is an AIOS_EUSER error carrying the Python exception, or
an error of the library's own, mapped by _errors.

The bridge between C code and Python code on one loop:
  - a CFuture is awaitable, as asyncio.Future is (asyncio's Task waits for it
    through add_done_callback and cancels it with cancel(msg)); wrap_pointer
    makes one for a future or task C code made;
  - follow(loop, future) is a core future that follows an asyncio future, for
    C code to await (aios_task_await): outcome forwards, cancellation back.
"""

import asyncio
import contextvars
import functools
import reprlib

from ._errors import (check, error_from_exception, exception_for_code,
                      exception_from_error)
from ._runtime import (NULL, address, box, discard, ffi, lend, lib, lost_callback, reclaim,
                       running_loop, unbox)


def format_callback(callback, args):
    """`name(arg, ...)` for error messages."""
    if isinstance(callback, functools.partial):
        args = callback.args + tuple(args)
        callback = callback.func
    name = (getattr(callback, "__qualname__", None)
            or getattr(callback, "__name__", None) or repr(callback))
    if args is None:
        return name
    return f"{name}({', '.join(reprlib.repr(a) for a in args)})"


def run_pending(arg):
    """Runs the done callback registered under `arg` on the running loop.
    Never raises into C: the registration's _run reports its exceptions."""
    loop = running_loop()
    cd = loop._pending.pop(address(arg), None) if loop is not None else None
    if cd is None:
        lost_callback(arg)
        return
    ffi.from_handle(cd)._run()

_FOREIGN = object()


def python_value(ptr):
    """A future's value as Python sees it: None for NULL, the object of a box,
    else the raw `void *` of a value C code put there."""
    if ptr == NULL:
        return None
    value = unbox(ptr, _FOREIGN)
    return ptr if value is _FOREIGN else value


def boxed_value(value):
    """(void *, destructor) for a value to put into a C future."""
    if value is None:
        return NULL, NULL
    return box(value), lib.aioswift_py_release


class CFuture:
    """A future of the C runtime: done, cancelled, cancel, result, exception,
    set_result, set_exception, add_done_callback, remove_done_callback and
    get_loop, as asyncio.Future has them, and awaitable as asyncio.Future is
    (asyncio.isfuture is true for it). Done callbacks are scheduled with
    call_soon by the library, never run inline.

    It may stand for a C task (aios_task_t): then cancel() requests the task's
    cancellation, as asyncio.Task.cancel does, and set_result/set_exception
    are refused."""

    # asyncio's protocol of future-like objects: the class attribute makes
    # asyncio.isfuture true; __await__ sets it on the instance for the Task
    # that receives the yielded future.
    _asyncio_future_blocking = False

    def __init__(self, loop, ptr, value_box=None):
        # Takes over one reference to `ptr`; `value_box` is the box of the
        # value the future was created with (sleep's result).
        self._loop = loop
        self._ptr = ptr
        self._callbacks = []        # _DoneCallback registrations not yet run
        self._box = None            # the box of our result or exception...
        self._owned = None          # ...whose value we hold while we live
        self._exception_tb = None   # the exception's traceback when it was set
        if value_box is not None:
            self._adopt(value_box)

    def _adopt(self, value_box):
        lend(value_box, self)
        self._box = value_box

    def _hold(self, value_box, exc=None):
        """A box read from the future (a value or an exception another
        future or task put there, as when a C task finishes with what it
        awaited): hold its value while we live if no other wrapper does, so
        that a cycle through it (exception -> traceback -> frame -> this
        future) stays one the collector sees."""
        if self._box is None and lend(value_box, self):
            self._box = value_box
            if exc is not None:
                self._exception_tb = exc.__traceback__

    def __del__(self):
        ptr = getattr(self, "_ptr", NULL)
        self._ptr = NULL
        value_box = getattr(self, "_box", None)
        if value_box is not None:
            reclaim(value_box, self)    # C may keep the value after us
            self._box = None
            self._owned = self._exception_tb = None
        if ptr != NULL:
            lib.aios_future_unref(ptr)

    def get_loop(self):
        return self._loop

    @property
    def pointer(self):
        """The core's future, `aios_future_t *` (for a task, the task as a
        future: aios_task_as_future's pointer), borrowed: valid while this
        CFuture lives. C code that keeps it takes its own reference
        (aios_future_ref); a C task awaiting it (aios_task_await) does. Any
        cffi module's ffi.cast takes it."""
        return self._ptr

    def __await__(self):
        if not self.done():
            self._asyncio_future_blocking = True
            yield self
        if not self.done():
            raise RuntimeError("await wasn't used with future")
        return self.result()

    __iter__ = __await__

    def done(self):
        return bool(check(lib.aios_future_done(self._ptr)))

    def cancelled(self):
        return bool(check(lib.aios_future_cancelled(self._ptr)))

    def cancel(self, msg=None):
        message = NULL if msg is None else str(msg).encode("utf-8", "replace")
        return check(lib.aios_future_cancel(self._ptr, message)) == 1

    def _failure(self, status):
        """The exception for a result() that returned `status`."""
        out = ffi.new("aios_error_t **")
        got = lib.aios_future_error(self._ptr, out)
        if got < 0 or out[0] == NULL:
            return exception_for_code(got if got < 0 else status)
        try:
            exc = exception_from_error(out[0])
            if lib.aios_error_kind(out[0]) == lib.AIOS_ERROR_USER:
                self._hold(lib.aios_error_user_data(out[0]), exc)
        finally:
            lib.aios_error_unref(out[0])
        if exc is self._owned:
            # Raised again and again, it must not pile up tracebacks (asyncio
            # raises a future's exception with the traceback it was set with).
            exc = exc.with_traceback(self._exception_tb)
        return exc

    def result(self):
        value = ffi.new("void **")
        status = lib.aios_future_result(self._ptr, value)
        if status == 0:
            ptr = value[0]
            if ptr != NULL:
                self._hold(ptr)
            return python_value(ptr)
        raise self._failure(status)

    def exception(self):
        out = ffi.new("aios_error_t **")
        check(lib.aios_future_error(self._ptr, out))
        if out[0] == NULL:
            return None
        try:
            exc = exception_from_error(out[0])
            cancelled = lib.aios_error_kind(out[0]) == lib.AIOS_ERROR_CANCELLED
            if lib.aios_error_kind(out[0]) == lib.AIOS_ERROR_USER:
                self._hold(lib.aios_error_user_data(out[0]), exc)
        finally:
            lib.aios_error_unref(out[0])
        if cancelled:
            raise exc
        return exc

    def set_result(self, result):
        value, destructor = boxed_value(result)
        status = lib.aios_future_set_result(self._ptr, value, destructor)
        if status < 0:
            if value != NULL:
                discard(value)
            check(status)
        if value != NULL:
            self._adopt(value)

    def set_exception(self, exception):
        if isinstance(exception, type):
            exception = exception()
        if not isinstance(exception, BaseException):
            raise TypeError(f"invalid exception object {exception!r}")
        if isinstance(exception, StopIteration):
            raise TypeError("StopIteration interacts badly with generators "
                            "and cannot be raised into a Future")
        error = error_from_exception(exception)
        try:
            check(lib.aios_future_set_error(self._ptr, error))
            self._adopt(lib.aios_error_user_data(error))
            self._exception_tb = exception.__traceback__
        finally:
            lib.aios_error_unref(error)

    def add_done_callback(self, fn, *, context=None):
        if not callable(fn):
            raise TypeError(f"a callable object is expected, got {fn!r}")
        if context is None:
            context = contextvars.copy_context()
        registration = _DoneCallback(self, fn, context)
        cd = ffi.new_handle(registration)
        registration._key = key = address(cd)
        pending = self._loop._pending
        pending[key] = cd
        status = lib.aios_future_add_done_callback(self._ptr, lib.aioswift_py_done, cd, NULL)
        if status < 0:
            pending.pop(key, None)
            check(status)
        self._callbacks.append(registration)

    def remove_done_callback(self, fn):
        """Remove the registrations of `fn` that the future has not scheduled
        yet; returns how many were removed."""
        removed = 0
        for registration in [r for r in self._callbacks if r._fn == fn]:
            count = check(lib.aios_future_remove_done_callback(
                self._ptr, lib.aioswift_py_done, ffi.cast("void *", registration._key)))
            if count:
                removed += count
                self._loop._pending.pop(registration._key, None)
                registration._forget()
        return removed

    def __repr__(self):
        try:
            if not self.done():
                state = "pending"
            elif self.cancelled():
                state = "cancelled"
            else:
                state = "finished"
        except Exception:
            state = "invalid"
        return f"<CFuture {state}>"


class CTask(CFuture):
    """A C task (aios_task_t) as a CFuture, with the asyncio.Task methods the
    core has: cancelling, uncancel, get_name and set_name. It runs no Python
    coroutine: get_coro() is None and its stack is empty."""

    def __init__(self, loop, ptr, task):
        super().__init__(loop, ptr)
        self._task = task

    def cancelling(self):
        return check(lib.aios_task_cancelling(self._task))

    def uncancel(self):
        return check(lib.aios_task_uncancel(self._task))

    def get_name(self):
        name = lib.aios_task_get_name(self._task)
        if name == NULL:
            check(lib.aios_future_done(self._ptr))      # the handle's error, if any
            return None
        return ffi.string(name).decode("utf-8", "replace")

    def set_name(self, value):
        check(lib.aios_task_set_name(self._task, str(value).encode("utf-8", "replace")))

    def get_coro(self):
        return None

    def get_stack(self, *, limit=None):
        return []

    def __repr__(self):
        text = super().__repr__()
        try:
            name = self.get_name()
        except Exception:
            return text
        return f"<CTask {name!r} {text[len('<CFuture '):]}"


def wrap_pointer(loop, pointer):
    """A CFuture for a future C code made on `loop`'s core loop, a CTask for
    a task.
    `pointer` is an `aios_future_t *` or `aios_task_t *` of any cffi module,
    or its address as an int. The CFuture takes a reference of its own; the
    caller keeps theirs. A stale or foreign pointer is refused by the library
    (AIOS_EBADHANDLE), a future of another loop with WrongLoopError."""
    if isinstance(pointer, int) and not isinstance(pointer, bool):
        ptr = ffi.cast("aios_future_t *", pointer)
    elif isinstance(pointer, ffi.CData) and ffi.typeof(pointer).kind == "pointer":
        if ffi.typeof(pointer).cname == "aios_task_t *":
            ptr = lib.aios_task_as_future(ffi.cast("aios_task_t *", pointer))
        else:
            ptr = ffi.cast("aios_future_t *", pointer)
    else:
        raise TypeError(f"an aios_future_t *, an aios_task_t * or an address was "
                        f"expected, got {pointer!r}")
    if ptr == NULL:
        raise exception_for_code(lib.AIOS_EINVAL, "NULL future")
    check(lib.aios_future_ref(ptr))
    try:
        out = ffi.new("aios_loop_t **")
        check(lib.aios_future_get_loop(ptr, out))
        same = out[0] == loop._ptr
        lib.aios_loop_unref(out[0])
        if not same:
            raise exception_for_code(lib.AIOS_EWRONGLOOP,
                                     "The future belongs to a different loop")
    except BaseException:
        lib.aios_future_unref(ptr)
        raise
    task = lib.aios_future_as_task(ptr)
    return CTask(loop, ptr, task) if task != NULL else CFuture(loop, ptr)


def _cancel_message(future):
    """The message a cancelled future was cancelled with, or None."""
    try:
        future.result()
    except asyncio.CancelledError as exc:
        return exc.args[0] if exc.args else None
    return None


def _copy_outcome(source, follower, back):
    """`source` (an asyncio future) is done: `follower` gets its outcome."""
    if back is not None:
        follower.remove_done_callback(back)
    if follower.done():
        return          # cancelled from the C side first: nothing to carry
    if source.cancelled():
        follower.cancel(_cancel_message(source))
        return
    exc = source.exception()
    if exc is None:
        follower.set_result(source.result())
    else:
        follower.set_exception(exc)


def _cancel_source(source, follower):
    """`follower` is done first: a cancellation goes back to `source`, as
    asyncio's Task cancels the future it awaits."""
    if follower.cancelled() and not source.done():
        source.cancel(_cancel_message(follower))


def follow(loop, source):
    """A new CFuture on `loop` that follows `source`, an asyncio future of
    `loop` (asyncio.Future, asyncio.Task or any future-like object), for C
    code to await: when `source` is done its result (the same Python object,
    boxed), exception (the same object, in an AIOS_EUSER error) or
    cancellation (with its message) is carried over; when the CFuture is
    cancelled first (a C task awaiting it was cancelled), `source` is
    cancelled with the same message. Either way takes one call_soon, as
    every done callback does. A CFuture is returned as it is."""
    if isinstance(source, CFuture):
        return source
    follower = loop.create_cfuture()
    if source.done():
        _copy_outcome(source, follower, None)
        return follower
    back = functools.partial(_cancel_source, source)
    follower.add_done_callback(back)
    source.add_done_callback(functools.partial(_copy_outcome, follower=follower, back=back))
    return follower


class _DoneCallback:
    """One add_done_callback registration, pending on the loop until it ran."""

    def __init__(self, future, fn, context):
        self._future = future
        self._fn = fn
        self._context = context
        self._key = None

    def _forget(self):
        future = self._future
        self._future = self._fn = self._context = None
        if future is not None:
            try:
                future._callbacks.remove(self)
            except ValueError:
                pass

    def _run(self):
        future, fn, context = self._future, self._fn, self._context
        self._forget()
        if future is None:
            return
        try:
            context.run(fn, future)
        except (SystemExit, KeyboardInterrupt) as exc:
            future._loop._interrupt(exc)
        except BaseException as exc:
            future._loop._report_error(
                exc, f"Exception in callback {format_callback(fn, (future,))}",
                {"future": future})


@ffi.def_extern()
def aioswift_py_done(future, arg):
    run_pending(arg)
