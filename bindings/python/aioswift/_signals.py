"""add_signal_handler and remove_signal_handler on the core's
(aios_loop_add_signal_handler: libuv's signal watchers), with
unix_events' rules: main thread only, valid signals only, SIGKILL and
SIGSTOP refused ("sig 9 cannot be caught"), coroutines refused, the handler
run by the loop as a Handle with its arguments, remove returning whether
there was one and putting Python's handler back (default_int_handler for
SIGINT, SIG_DFL for the others).

Why the core's handlers and not Python's signal module. asyncio and uvloop
set a Python handler for the signal (signal.signal) and read the numbers
Python writes to the wakeup fd. Here the process has a second user of
signals: the core. It reaps children on SIGCHLD with libuv's own signal
watcher, and C code on the same loop may watch signals through the C ABI.
Both set the system's action for the signal (sigaction) to libuv's handler,
and Python's signal.signal sets it to Python's: whoever sets it last gets
the signal. So with asyncio's design, add_signal_handler(SIGCHLD) (which
asyncio's own SafeChildWatcher calls) would take SIGCHLD from the core and
its children would never be reaped. Through the core, every watcher of a
signal gets it, in every loop: the binding's handlers, the core's reaper
and C code's handlers.

Python's side is kept right around it:

  - Python's own handler table says what asyncio's would: add sets a Python
    handler for the signal (signal.getsignal shows it; asyncio.run's SIGINT
    handling then sees a custom handler and leaves SIGINT alone, as with
    asyncio), remove sets default_int_handler or SIG_DFL. Both go through
    _native.keep_disposition when the core still uses the signal, which sets
    Python's table without taking the system's action from libuv.
  - That Python handler is not a no-op: when Python's action is what the
    system has for the signal (someone called signal.signal for it after us
    and put our handler back), it hands the signal to the loop itself.
  - A program that adds no handler for SIGINT keeps Python's: Ctrl-C is
    KeyboardInterrupt (the loop wakes for Python's handlers through the
    signal wakeup fd, see _loop.py and _native.c).
  - SIGPIPE: remove puts back SIG_IGN, the action Python starts with and the
    core's writes rely on (asyncio sets SIG_DFL, which would make a write to
    a closed pipe kill the process).

What cannot be had: code that calls signal.signal for a signal the loop
handles, and does not put our handler back, takes the signal from the core
(as it would take it from asyncio's loop, where the loop's handler would
still run through the wakeup fd).
"""

import signal
import sys
import threading
import weakref

from asyncio import coroutines, format_helpers

from . import _native
from ._errors import InvalidArgumentError

WATCH_SIGNAL = 2

# The loop whose handler a Python-delivered signal goes to: the last to add
# one, as the signal wakeup fd goes to the last loop with asyncio.
_loops_by_signal = weakref.WeakValueDictionary()
# signum -> the system's action once the core watched it (libuv's handler).
_core_actions = {}

_iscoroutinefunction = getattr(coroutines, "_iscoroutinefunction", None) or \
    coroutines.iscoroutinefunction


def _python_handler(signum, frame):
    """Python's handler for the signals loops handle: it runs only when
    Python's action is the system's for the signal (see the module's doc)."""
    loop = _loops_by_signal.get(signum)
    if loop is not None:
        loop._signal_from_python(signum)


def _python_default(sig):
    if sig == signal.SIGINT:
        return signal.default_int_handler
    if sig == signal.SIGPIPE:
        return signal.SIG_IGN
    return signal.SIG_DFL


def _set_python_handler(sig, handler, keep_system_action):
    """signal.signal(sig, handler), leaving the system's action alone when
    the core still uses the signal."""
    try:
        if keep_system_action:
            _native.keep_disposition(sig, lambda: signal.signal(sig, handler))
        else:
            signal.signal(sig, handler)
    except OSError as exc:
        if exc.errno == 22:     # EINVAL
            raise RuntimeError(f"sig {sig} cannot be caught") from None
        raise


class SignalsMixin:
    """add_signal_handler and remove_signal_handler of aioswift.Loop."""

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    def add_signal_handler(self, sig, callback, *args):
        """Call callback(*args) on the loop each time signal `sig` arrives.
        Main thread only; replaces the handler there was for `sig`."""
        if coroutines.iscoroutine(callback) or _iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        if threading.current_thread() is not threading.main_thread():
            # asyncio's message (signal.set_wakeup_fd's).
            raise RuntimeError("set_wakeup_fd only works in main thread of the main interpreter")
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            raise RuntimeError(f"sig {sig} cannot be caught")
        try:
            handle = self._core.add_watch(WATCH_SIGNAL, sig, callback, *args)
        except InvalidArgumentError:
            raise RuntimeError(f"sig {sig} cannot be caught") from None
        if self._debug:
            handle._source_traceback = format_helpers.extract_stack(sys._getframe(1))
        self._signal_handlers[sig] = handle
        _loops_by_signal[sig] = self
        _core_actions[sig] = _native.signal_action(sig)
        # The system's action is libuv's now: Python's table is set, the
        # action kept.
        try:
            _set_python_handler(sig, _python_handler, keep_system_action=True)
        except BaseException:
            self._drop_signal_handler(sig)
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler of `sig`; True if there was one."""
        self._check_signal(sig)
        if self._signal_handlers.pop(sig, None) is None:
            return False
        if not self.is_closed():
            self._core.remove_watch(WATCH_SIGNAL, sig)
        self._restore_python_handler(sig)
        return True

    def _drop_signal_handler(self, sig):
        self._signal_handlers.pop(sig, None)
        if not self.is_closed():
            self._core.remove_watch(WATCH_SIGNAL, sig)
        if _loops_by_signal.get(sig) is self:
            del _loops_by_signal[sig]

    def _restore_python_handler(self, sig):
        if _loops_by_signal.get(sig) is self:
            del _loops_by_signal[sig]
        # libuv put back SIG_DFL if no watcher of the core is left for the
        # signal; else the core still needs its action.
        in_use = _native.signal_action(sig) == _core_actions.get(sig)
        _set_python_handler(sig, _python_default(sig), keep_system_action=in_use)

    def _signal_from_python(self, sig):
        # Python's action had the signal instead of libuv's.
        handle = self._signal_handlers.get(sig)
        if handle is None or handle.cancelled() or self.is_closed():
            return
        self.call_soon_threadsafe(handle._callback, *handle._args, context=handle.get_context())

    def _close_signals(self):
        # The core's loop closed and took its handlers with it; Python's go
        # back as asyncio's close() puts them back.
        for sig in list(self._signal_handlers):
            del self._signal_handlers[sig]
            try:
                self._restore_python_handler(sig)
            except (ValueError, RuntimeError, OSError):
                pass                    # not the main thread any more


__all__ = ["SignalsMixin"]
