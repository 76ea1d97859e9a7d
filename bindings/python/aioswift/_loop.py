"""Loop: asyncio's event loop on libaio-swift, an asyncio.AbstractEventLoop.

Scheduling is the core's: call_soon, call_soon_threadsafe, call_later and
call_at go through the C ABI (aios_loop_call_soon, ..._threadsafe,
aios_loop_call_at) from aioswift._native, whose bound methods are set on
each loop object so that asyncio's C Task and Future call C directly when
they look up loop.call_soon; the core's ready queue and timer heap decide
what runs when, and run_forever is the core's. asyncio's own Task and Future
(the C _asyncio ones) run on top, as they do on uvloop.

What is per loop rather than per callback is Python, here: running and
stopping, task factories, async generator and executor shutdown, exception
handlers and debug mode.

I/O is the core's, one module per area: TCP and Unix streams, servers, TLS
and name resolution (_network.py, _transport.py), the sock_* methods and
sendfile (_sockets.py), pipes (_pipes.py), subprocesses (_subprocess.py),
datagram endpoints (_datagrams.py), add_reader/add_writer (_watchers.py)
and signal handlers (_signals.py, whose docstring says why they are the
core's and not Python's signal module's).
"""

import asyncio
import concurrent.futures
import itertools
import logging
import signal
import sys
import threading
import time
import traceback
import warnings
import weakref

from asyncio import constants, coroutines, events, format_helpers, futures, tasks

from . import _native
from ._errors import check, error_from_exception, exception_for_code, exception_from_error
from ._future import CFuture, boxed_value, follow, wrap_pointer
from ._datagrams import DatagramsMixin, sendto_address
from ._network import NetworkMixin
from ._pipes import PipesMixin
from ._signals import SignalsMixin
from ._sockets import SocketMixin
from ._subprocess import SubprocessMixin
from ._watchers import WatchersMixin
from ._transport import connlost_warning
from ._runtime import NULL, address, box_extras, discard, ffi, lib, set_running_loop, text

# asyncio's logger: the default exception handler and debug mode's slow
# callback warnings go where asyncio's own loop sends them.
logger = logging.getLogger("asyncio")

# Loops by the key their C exception handler gets as its argument.
_loops = weakref.WeakValueDictionary()
_keys = itertools.count(1)

_PY312 = sys.version_info >= (3, 12)


_PY313 = sys.version_info >= (3, 13)


def _format_callback(callback, args, debug):
    if _PY313:
        return format_helpers._format_callback_source(callback, args, debug=debug)
    return format_helpers._format_callback_source(callback, args)


def _format_handle(handle):
    """repr() of the native Handle and TimerHandle, as asyncio writes its own."""
    info = [type(handle).__name__]
    if handle._cancelled:
        info.append("cancelled")
    if isinstance(handle, _native.TimerHandle):
        info.append(f"when={handle._when}")
    callback = handle._callback
    if callback is not None:
        loop = handle._loop
        debug = loop.get_debug() if loop is not None else False
        info.append(_format_callback(callback, handle._args, debug))
    source = handle._source_traceback
    if source:
        frame = source[-1]
        info.append(f"created at {frame[0]}:{frame[1]}")
    return "<{}>".format(" ".join(info))


def _error_for_code(code, message=None):
    return exception_for_code(code, message)


_native.configure(formatter=_format_handle, error_for_code=_error_for_code,
                  tasks=tasks, futures=futures, buffered_protocol=asyncio.BufferedProtocol,
                  connlost_warning=connlost_warning, datagram_address=sendto_address)


_iscoroutinefunction = getattr(coroutines, "_iscoroutinefunction", None) or \
    coroutines.iscoroutinefunction


def _check_callback(callback, method):
    if coroutines.iscoroutine(callback) or _iscoroutinefunction(callback):
        raise TypeError(f"coroutines cannot be used with {method}()")
    if not callable(callback):
        raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")


def _run_until_complete_cb(fut):
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # The loop stops by itself: the interrupt is on its way out.
            return
    futures._get_loop(fut).stop()


class Loop(NetworkMixin, SocketMixin, PipesMixin, SubprocessMixin, DatagramsMixin, WatchersMixin,
           SignalsMixin, asyncio.AbstractEventLoop):
    """An asyncio event loop on libaio-swift. As asyncio's, it may be made on
    one thread and run on another: while it is not running, it goes with the
    thread that runs it or schedules on it (the core's loops belong to one
    thread; see _native's move_to_this_thread). While it runs, only
    call_soon_threadsafe may be called from other threads."""

    def __init__(self):
        core = _native.Core(self)
        self._core = core
        self._key = next(_keys)
        core.set_exception_handler(int(ffi.cast("uintptr_t", lib.aioswift_py_exception_handler)),
                                   self._key)
        _loops[self._key] = self
        core.set_hooks(reporter=self._callback_failed, debug_check=self._debug_check,
                       slow_reporter=self._slow_callback)
        self._debug = False
        self._exception_handler = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._thread_id = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        # cffi handles of CFuture done-callback registrations C may still call
        self._pending = {}
        # Network I/O (_network.py): servers by the key their connections
        # carry, and the core servers we hold references to.
        self._io_on = False
        self._servers = {}              # open: the loop keeps them serving
        self._closed_servers = weakref.WeakValueDictionary()
        self._server_refs = set()
        # Signal handlers by signal (their Handles), and the transports whose
        # descriptor the core does not know as theirs (add_reader refuses it).
        self._signal_handlers = {}
        self._fd_transports = weakref.WeakSet()
        # The hot path: C callables on the instance, found before the class's
        # methods by asyncio's C Task and Future (and by everyone else). A
        # subclass that overrides one of these methods keeps its own.
        cls = type(self)
        for name in ("call_soon", "call_soon_threadsafe", "call_later", "call_at",
                     "get_debug", "create_future", "create_task"):
            if getattr(cls, name) is getattr(Loop, name):
                setattr(self, name, getattr(core, name))
        if cls.time is Loop.time:
            self.time = time.monotonic
        self.set_debug(coroutines._is_debug_mode())

    @property
    def _ptr(self):
        """The core's loop (aios_loop_t *). It changes when the loop moves to
        the thread that runs it (see _native's move_to_this_thread)."""
        return ffi.cast("aios_loop_t *", self._core.address)

    def __repr__(self):
        return (f"<{type(self).__name__} running={self.is_running()} "
                f"closed={self.is_closed()} debug={self.get_debug()}>")

    def __del__(self, _warn=warnings.warn):
        core = getattr(self, "_core", None)
        if core is None or core.closed:
            return
        _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
        if not core.running:
            try:
                self.close()
            except Exception:       # another thread's garbage collection
                pass

    # -- scheduling (the instance's C callables stand in for these) --------

    def call_soon(self, callback, *args, context=None):
        """Call callback(*args) on a later iteration, in FIFO order. Returns
        a Handle."""
        return self._core.call_soon(callback, *args, context=context)

    def call_soon_threadsafe(self, callback, *args, context=None):
        """call_soon from any thread; wakes the loop."""
        return self._core.call_soon_threadsafe(callback, *args, context=context)

    def call_later(self, delay, callback, *args, context=None):
        """Call callback(*args) once `delay` seconds have passed. Returns a
        TimerHandle."""
        return self._core.call_later(delay, callback, *args, context=context)

    def call_at(self, when, callback, *args, context=None):
        """Call callback(*args) at loop time `when`."""
        return self._core.call_at(when, callback, *args, context=context)

    def time(self):
        """The loop's clock: time.monotonic(), which is the core's too."""
        return time.monotonic()

    def create_future(self):
        """asyncio.Future(loop=self)."""
        return self._core.create_future()

    def create_task(self, coro, *, name=None, context=None):
        """Schedule the coroutine `coro`: a Task, or what the task factory
        makes (then named `name`)."""
        return self._core.create_task(coro, name=name, context=context)

    def set_task_factory(self, factory):
        """factory(loop, coro[, context=]) makes the loop's tasks; None
        restores the default. asyncio.eager_task_factory works (3.12+)."""
        self._core.set_task_factory(factory)

    def get_task_factory(self):
        return self._core.get_task_factory()

    # -- running ---------------------------------------------------------

    def _check_closed(self):
        if self._core.closed:
            raise exception_for_code(lib.AIOS_ECLOSED, "Event loop is closed")

    def _check_running(self):
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def _check_thread(self):
        thread_id = self._thread_id
        if thread_id is not None and thread_id != threading.get_ident():
            raise exception_for_code(lib.AIOS_EWRONGTHREAD,
                                     "Non-thread-safe operation invoked on an event loop "
                                     "other than the current one")

    def run_forever(self):
        """Run until stop(). A stop() before the call runs one iteration."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_hooks = sys.get_asyncgen_hooks()
        previous = None
        wakeup = _install_signal_wakeup()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            events._set_running_loop(self)
            previous = set_running_loop(self)
            self._core.run(wakeup is not None)
        finally:
            if wakeup is not None:
                _restore_signal_wakeup(wakeup)
            set_running_loop(previous)
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_hooks)

    def run_until_complete(self, future):
        """Run until `future` (a future, a coroutine or an awaitable) is done;
        return its result or raise its exception."""
        self._check_closed()
        self._check_running()
        if isinstance(future, CFuture):
            return self._run_until_cfuture(future)
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # An exception raised by the loop is not the task's to log.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # The coroutine raised a BaseException: it is raised here,
                # so the task need not log it as never retrieved.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def _run_until_cfuture(self, future):
        if future.get_loop() is not self:
            raise exception_for_code(lib.AIOS_EWRONGLOOP,
                                     "The future belongs to a different loop than "
                                     "the one specified as the loop argument")
        future.add_done_callback(lambda f: self.stop())
        self.run_forever()
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def stop(self):
        """Stop after the current iteration (before run_forever: after the
        next one)."""
        self._core.stop()

    def is_running(self):
        return self._core.running

    def is_closed(self):
        return self._core.closed

    def close(self):
        """Close the loop: pending callbacks and timers are dropped, the
        default executor is shut down without waiting. Twice is a no-op."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._core.closed:
            return
        if self._debug:
            logger.debug("Close %r", self)
        self._core.close()
        self._close_network()
        self._close_signals()
        pending, self._pending = self._pending, {}
        for cd in pending.values():
            ffi.from_handle(cd)._forget()
        self._executor_shutdown_called = True
        executor, self._default_executor = self._default_executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    # -- async generators and executors ------------------------------------

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(f"asynchronous generator {agen!r} was scheduled after "
                          f"loop.shutdown_asyncgens() call", ResourceWarning, source=self)
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Close every asynchronous generator still alive on this loop."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await tasks.gather(*[agen.aclose() for agen in closing],
                                     return_exceptions=True)
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    "message": f"an error occurred during closing of asynchronous "
                               f"generator {agen!r}",
                    "exception": result,
                    "asyncgen": agen,
                })

    async def shutdown_default_executor(self, timeout=None):
        """Shut the default executor down, waiting for its threads in a thread
        of its own (at most `timeout` seconds, then a RuntimeWarning)."""
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(executor, future))
        thread.start()
        try:
            await future
        finally:
            thread.join(timeout)
        if thread.is_alive():
            warnings.warn(f"The executor did not finishing joining its threads "
                          f"within {timeout} seconds.", RuntimeWarning, stacklevel=2)
            executor.shutdown(wait=False)

    def _do_shutdown(self, executor, future):
        try:
            executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(futures._set_result_unless_cancelled, future, None)
        except Exception as exc:
            if not self.is_closed():
                self.call_soon_threadsafe(_set_exception_unless_cancelled, future, exc)

    def run_in_executor(self, executor, func, *args):
        """func(*args) in `executor` (None: the default ThreadPoolExecutor);
        an asyncio future of its result."""
        self._check_closed()
        if self._debug:
            _check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor")
        self._default_executor = executor

    # -- errors ----------------------------------------------------------

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        """handler(loop, context) receives what nobody handled; None restores
        default_exception_handler."""
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context to asyncio's logger, with its exception's traceback."""
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        exc_info = False
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        lines = [message]
        for key in sorted(context):
            if key in ("message", "exception"):
                continue
            value = context[key]
            if key == "source_traceback":
                value = ("Object created at (most recent call last):\n"
                         + "".join(traceback.format_list(value)).rstrip())
            elif key == "handle_traceback":
                value = ("Handle created at (most recent call last):\n"
                         + "".join(traceback.format_list(value)).rstrip())
            else:
                value = repr(value)
            lines.append(f"{key}: {value}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Hand `context` to the exception handler (or the default one); what
        that raises is logged, except SystemExit and KeyboardInterrupt."""
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
            thing = context.get("task")
            if thing is None:
                thing = context.get("future")
            if thing is None:
                thing = context.get("handle")
            ctx = None
            if thing is not None and hasattr(thing, "get_context"):
                ctx = thing.get_context()
            if _PY312 and ctx is not None and hasattr(ctx, "run"):
                ctx.run(handler, self, context)
            else:
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
                logger.error("Exception in default exception handler while handling an "
                             "unexpected error in custom exception handler", exc_info=True)

    def _callback_failed(self, handle, exc):
        # The native trampoline's report of a callback that raised.
        context = {
            "message": f"Exception in callback "
                       f"{_format_callback(handle._callback, handle._args, self._debug)}",
            "exception": exc,
            "handle": handle,
        }
        source = handle._source_traceback
        if source:
            context["source_traceback"] = source
        self.call_exception_handler(context)

    def _report_error(self, exc, message, extras):
        """Report an exception raised by Python code a C future called (a
        CFuture's done callback): through the C loop's handler as an
        AIOS_EUSER error that carries it, back to call_exception_handler with
        `extras` in the context; if C refuses it, straight there."""
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

    def _interrupt(self, exc):
        """SystemExit or KeyboardInterrupt in a callback: stop, and let
        run_forever raise it."""
        self._core.set_interrupt(exc)

    # -- debug -----------------------------------------------------------

    def get_debug(self):
        return self._core.get_debug()

    def set_debug(self, enabled):
        """Debug mode: callbacks slower than slow_callback_duration are logged,
        callbacks are checked and remember where they were scheduled, and
        coroutines their origin."""
        enabled = bool(enabled)
        self._debug = enabled
        self._core.set_debug(enabled)
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)

    @property
    def slow_callback_duration(self):
        """In debug mode, callbacks that take longer (seconds) are logged."""
        return self._core.slow_callback_duration

    @slow_callback_duration.setter
    def slow_callback_duration(self, seconds):
        self._core.slow_callback_duration = seconds

    def _debug_check(self, callback, method):
        # Debug mode's checks at scheduling (from the native call_*): the
        # thread, the callback, and where the handle was made.
        if method != "call_soon_threadsafe":
            self._check_thread()
        _check_callback(callback, method)
        return format_helpers.extract_stack(sys._getframe(1))

    def _slow_callback(self, handle, seconds):
        logger.warning("Executing %s took %.3f seconds", handle, seconds)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(constants.DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    # -- C futures (the bridge to C code on the same loop) -------------------

    def create_cfuture(self):
        """A new pending CFuture (a future of the C runtime) on this loop."""
        self._check_closed()
        self._core.claim()
        out = ffi.new("aios_future_t **")
        check(lib.aios_future_new(self._ptr, out))
        return CFuture(self, out[0])

    def sleep_cfuture(self, delay, result=None):
        """A CFuture (aios_sleep) that gets `result` after `delay` seconds."""
        self._check_closed()
        self._core.claim()
        value, destructor = boxed_value(result)
        out = ffi.new("aios_future_t **")
        status = lib.aios_sleep(self._ptr, float(delay), value, destructor, out)
        if status < 0:
            if value != NULL:
                discard(value)
            check(status)
        return CFuture(self, out[0], value if value != NULL else None)

    @property
    def aios_loop(self):
        """The core's loop, `aios_loop_t *`, for C code to make futures and
        tasks on and to schedule callbacks with (aios_loop_call_soon runs in
        one FIFO order with call_soon's). Borrowed: valid while this loop is
        open. The loop comes to the calling thread first if it is not
        running; C objects made on it stay on that thread."""
        self._check_closed()
        self._core.claim()
        return self._ptr

    def wrap_cfuture(self, pointer):
        """A CFuture for a future C code made on this loop, a CTask for a
        task (an `aios_future_t *` or `aios_task_t *` of any cffi module, or
        its address), awaitable from Python. It takes its own reference; the
        caller keeps theirs. Cancelling it cancels the future, or requests
        the task's cancellation; a CTask also has cancelling(), uncancel(),
        get_name() and set_name()."""
        self._check_closed()
        return wrap_pointer(self, pointer)

    def as_cfuture(self, future):
        """A CFuture that follows `future` (an asyncio future or task of this
        loop, or an awaitable, which becomes a task), for C code to await
        through its `pointer`: the outcome is carried over (results and
        exceptions as the same Python objects), and a cancellation of the
        CFuture (of a C task awaiting it) cancels `future`. A CFuture is
        returned as it is."""
        self._check_closed()
        if not isinstance(future, CFuture):
            future = tasks.ensure_future(future, loop=self)
            if futures._get_loop(future) is not self:
                raise exception_for_code(lib.AIOS_EWRONGLOOP,
                                         "The future belongs to a different loop than "
                                         "the one specified as the loop argument")
        elif future.get_loop() is not self:
            raise exception_for_code(lib.AIOS_EWRONGLOOP,
                                     "The future belongs to a different loop")
        return follow(self, future)


def _install_signal_wakeup():
    """On the main thread, with no wakeup fd of someone else's: make signals
    wake the running loop (see _native's signal_wakeup_fd). Returns what to
    restore, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    fd = _native.signal_wakeup_fd()
    try:
        previous = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    except (ValueError, OSError):
        return None
    if previous not in (-1, fd):
        signal.set_wakeup_fd(previous)      # someone else's: leave it alone
        return None
    return (previous,)


def _restore_signal_wakeup(saved):
    try:
        signal.set_wakeup_fd(saved[0])
    except (ValueError, OSError):
        pass


def _set_exception_unless_cancelled(future, exc):
    if not future.cancelled():
        future.set_exception(exc)


@ffi.def_extern()
def aioswift_py_exception_handler(loop_ptr, c_context, arg):
    # The core's report of an unhandled error (ours coming back from
    # _report_error, or the library's own: an error never retrieved from a C
    # future). Nothing may escape into C.
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
            logger.error("%s (its aioswift loop is gone)", context["message"],
                         exc_info=context.get("exception"))
        else:
            loop.call_exception_handler(context)
    except (SystemExit, KeyboardInterrupt) as exc:
        if loop is not None and loop.is_running():
            loop._interrupt(exc)
        else:
            traceback.print_exc()
    except BaseException:
        traceback.print_exc()


__all__ = ["Loop"]
