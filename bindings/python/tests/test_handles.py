"""aioswift's handles: what C holds for Python, and when Python lets go."""

import asyncio
import contextvars
import gc
import logging
import sys
import threading
import time
import weakref

import pytest

import aioswift
from aioswift import _runtime, lib


class Arg:
    """An argument that can be watched with a weakref."""


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_pending_callbacks_are_kept_until_they_ran(aloop):
    calls = []
    handles = [aloop.call_soon(calls.append, i) for i in range(3)]
    timer = aloop.call_later(0.001, calls.append, "timer")
    assert len(aloop._pending) == 4
    assert all(h._c is not None for h in handles + [timer])
    aloop.call_later(0.02, aloop.stop)
    aloop.run_forever()
    assert calls == [0, 1, 2, "timer"]
    assert aloop._pending == {}
    # A handle that ran gave its C handle back and keeps no callback.
    assert all(h._c is None and h._callback is None for h in handles + [timer])
    assert not any(h.cancelled() for h in handles)


def test_a_callback_and_its_arguments_are_released_after_it_ran(aloop):
    arg = Arg()
    refs_before = sys.getrefcount(arg)
    seen = []

    def callback(a):
        seen.append(a is arg)

    callback_ref = weakref.ref(callback)
    aloop.call_soon(callback, arg)
    assert sys.getrefcount(arg) > refs_before
    arg_ref = weakref.ref(arg)
    del callback
    run_once(aloop)
    assert seen == [True]
    assert sys.getrefcount(arg) == refs_before
    del arg
    assert arg_ref() is None
    assert callback_ref() is None


def test_cancel_releases_the_callback_and_its_arguments(aloop):
    arg = Arg()
    refs_before = sys.getrefcount(arg)
    calls = []
    handle = aloop.call_later(0.01, calls.append, arg)
    timer_arg_refs = sys.getrefcount(arg)
    assert timer_arg_refs > refs_before
    soon = aloop.call_soon(calls.append, arg)
    handle.cancel()
    soon.cancel()
    assert handle.cancelled() and soon.cancelled()
    assert sys.getrefcount(arg) == refs_before
    assert aloop._pending == {}
    assert handle._c is None and soon._c is None
    handle.cancel()            # cancelling twice is a no-op
    aloop.call_later(0.03, aloop.stop)
    aloop.run_forever()
    assert calls == []


def test_cancel_after_the_callback_ran_marks_it_cancelled(aloop):
    # asyncio's Handle.cancel() after the run: no error, and cancelled() is True.
    calls = []
    handle = aloop.call_soon(calls.append, 1)
    run_once(aloop)
    assert calls == [1]
    assert not handle.cancelled()
    handle.cancel()
    assert handle.cancelled()


def test_a_callback_can_cancel_a_later_one(aloop):
    calls = []
    later = aloop.call_soon(calls.append, "later")
    aloop.call_soon(later.cancel)
    aloop.call_soon(calls.append, "other")
    # order: later (already queued before the cancel) runs first
    run_once(aloop)
    assert calls == ["later", "other"]

    calls.clear()
    first = aloop.call_soon(lambda: second.cancel())
    second = aloop.call_soon(calls.append, "second")
    run_once(aloop)
    assert first is not second
    assert calls == []
    assert second.cancelled()
    assert aloop._pending == {}


def test_close_drops_pending_callbacks_and_their_arguments(aloop):
    arg = Arg()
    arg_ref = weakref.ref(arg)
    handles = [aloop.call_soon(print, arg), aloop.call_later(5, print, arg),
               aloop.call_at(aloop.time() + 5, print, arg)]
    del arg
    assert arg_ref() is not None
    aloop.close()
    assert aloop._pending == {}
    assert arg_ref() is None
    assert all(h._c is None for h in handles)


def test_timer_handle_when(aloop):
    now = aloop.time()
    handle = aloop.call_at(now + 3.5, lambda: None)
    assert isinstance(handle, aioswift.TimerHandle)
    assert handle.when() == pytest.approx(now + 3.5, abs=1e-3)
    handle.cancel()
    soon = aloop.call_soon(lambda: None)
    assert type(soon) is aioswift.Handle
    assert not hasattr(soon, "when")
    soon.cancel()


def test_callbacks_reject_coroutines_and_non_callables(aloop):
    async def coro():
        pass

    with pytest.raises(TypeError):
        aloop.call_soon(coro)
    with pytest.raises(TypeError):
        aloop.call_later(0.1, 42)
    with pytest.raises(TypeError):
        aloop.call_later(None, print)
    assert aloop._pending == {}


def test_callbacks_run_in_the_context_they_were_scheduled_in(aloop):
    var = contextvars.ContextVar("var", default="unset")
    seen = []
    var.set("at call_soon")
    aloop.call_soon(lambda: seen.append(var.get()))
    var.set("changed")
    other = contextvars.Context()
    aloop.call_soon(lambda: seen.append(var.get()), context=other)
    run_once(aloop)
    assert seen == ["at call_soon", "unset"]


def test_call_soon_from_another_thread_is_refused(aloop):
    errors = []

    def worker():
        try:
            aloop.call_soon(print, "never")
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], aioswift.WrongThreadError)
    assert errors[0].code == lib.AIOS_EWRONGTHREAD
    assert aloop._pending == {}


def test_a_threadsafe_handle_is_cancelled_on_the_loops_thread_only(aloop):
    calls = []
    made = []

    def worker():
        handle = aloop.call_soon_threadsafe(calls.append, "threadsafe")
        made.append(handle)
        try:
            handle.cancel()
        except RuntimeError as exc:
            made.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    handle, error = made
    assert isinstance(error, aioswift.WrongThreadError)
    assert not handle.cancelled()
    handle.cancel()
    assert handle.cancelled()
    run_once(aloop)
    assert calls == []
    assert aloop._pending == {}


def test_many_threads_call_soon_threadsafe(aloop):
    got = []
    per_thread = 200

    def worker(name):
        for i in range(per_thread):
            aloop.call_soon_threadsafe(got.append, (name, i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10

    def poll():
        if len(got) == 4 * per_thread or time.monotonic() > deadline:
            aloop.stop()
        else:
            aloop.call_later(0.005, poll)

    aloop.call_soon(poll)
    aloop.run_forever()
    for t in threads:
        t.join()
    run_once(aloop)
    assert len(got) == 4 * per_thread
    for n in range(4):   # FIFO per thread
        assert [i for name, i in got if name == n] == list(range(per_thread))
    assert aloop._pending == {}


def test_the_default_exception_handler_logs_the_traceback(aloop, caplog):
    def bad():
        raise KeyError("missing")

    aloop.call_soon(bad)
    with caplog.at_level(logging.ERROR, logger="aioswift"):
        run_once(aloop)
    records = [r for r in caplog.records if r.name == "aioswift"]
    assert len(records) == 1
    assert records[0].getMessage().startswith("Exception in callback ")
    assert records[0].exc_info[0] is KeyError


def test_an_error_in_the_custom_handler_goes_to_the_default_one(aloop, caplog):
    def handler(loop, context):
        raise RuntimeError("handler broke")

    aloop.set_exception_handler(handler)
    aloop.call_soon(lambda: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="aioswift"):
        run_once(aloop)
    records = [r for r in caplog.records if r.name == "aioswift"]
    assert len(records) == 1
    assert records[0].getMessage().startswith("Unhandled error in exception handler")
    assert records[0].exc_info[0] is RuntimeError


def test_keyboard_interrupt_in_a_callback_stops_the_loop_and_is_raised(aloop):
    def interrupt():
        raise KeyboardInterrupt

    aloop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        aloop.run_forever()
    assert not aloop.is_running()
    calls = []
    aloop.call_soon(calls.append, "still usable")
    run_once(aloop)
    assert calls == ["still usable"]


def test_exception_handler_sees_the_cancelled_error_of_a_callback(aloop):
    # asyncio reports any BaseException but SystemExit / KeyboardInterrupt.
    reports = []
    aloop.set_exception_handler(lambda loop, context: reports.append(context))
    error = asyncio.CancelledError("from a callback")

    def cancelled():
        raise error

    aloop.call_soon(cancelled)
    run_once(aloop)
    assert [c["exception"] for c in reports] == [error]


def test_slow_callbacks_are_reported_in_debug_mode(aloop):
    reports = []
    aloop.set_exception_handler(lambda loop, context: reports.append(context))
    aloop.set_debug(True)
    aloop.slow_callback_duration = 0.01
    assert aloop.slow_callback_duration == 0.01
    aloop.call_soon(time.sleep, 0.05)
    run_once(aloop)
    assert len(reports) == 1
    assert isinstance(reports[0]["message"], str) and reports[0]["message"]
    assert "exception" not in reports[0]


def test_no_callback_arrived_with_an_unknown_pointer():
    gc.collect()
    assert _runtime.stats == {"unknown_release": 0, "lost_callback": 0}
