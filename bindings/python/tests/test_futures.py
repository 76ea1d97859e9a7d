"""CFuture: C futures holding Python values and exceptions."""

import asyncio
import errno
import gc
import time
import weakref

import pytest

import aioswift
from aioswift import _runtime, ffi, lib


class Value:
    """A result that can be watched with a weakref."""


def tracebacks(tb):
    chain = []
    while tb is not None:
        chain.append(tb)
        tb = tb.tb_next
    return chain


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def c_error(code, message=None):
    out = ffi.new("aios_error_t **")
    assert lib.aios_error_new(code, message.encode() if message else ffi.NULL, out) == 0
    return out[0]


def test_run_until_complete_of_a_sleep_returns_its_result(aloop):
    started = aloop.time()
    assert aloop.run_until_complete(aloop.sleep_cfuture(0.01, "x")) == "x"
    assert aloop.time() - started >= 0.01 - 0.002
    assert not aloop.is_running()


def test_sleep_results_of_any_python_type(aloop):
    value = Value()
    for result in (None, 0, "", [1, 2], value):
        future = aloop.sleep_cfuture(0.001, result)
        assert aloop.run_until_complete(future) is result
        assert future.result() is result
        assert future.exception() is None
        assert future.done() and not future.cancelled()


def test_sleep_zero_gives_a_future_that_is_already_done(aloop):
    future = aloop.sleep_cfuture(0, "now")
    assert future.done()
    assert future.result() == "now"
    assert aloop.sleep_cfuture(-1).result() is None


def test_the_result_is_released_exactly_once_when_the_future_is_freed(aloop):
    boxed = _runtime.boxed_count()
    value = Value()
    value_ref = weakref.ref(value)
    future = aloop.sleep_cfuture(0.001, value)
    assert _runtime.boxed_count() == boxed + 1
    del value
    assert aloop.run_until_complete(future) is value_ref()
    assert value_ref() is not None        # the future still owns it
    del future
    gc.collect()
    assert value_ref() is None
    assert _runtime.boxed_count() == boxed
    assert _runtime.stats["unknown_release"] == 0


def test_a_cancelled_sleep_raises_cancelled_error(aloop):
    value = Value()
    value_ref = weakref.ref(value)
    future = aloop.sleep_cfuture(10, value)
    del value
    assert future.cancel() is True
    assert future.cancelled() and future.done()
    with pytest.raises(asyncio.CancelledError):
        future.result()
    with pytest.raises(asyncio.CancelledError):
        future.exception()
    assert future.cancel() is False          # already done
    with pytest.raises(asyncio.CancelledError):
        aloop.run_until_complete(future)
    del future
    gc.collect()
    assert value_ref() is None


def test_cancel_message_travels_with_the_cancelled_error(aloop):
    future = aloop.sleep_cfuture(10)
    future.cancel("because")
    with pytest.raises(asyncio.CancelledError) as info:
        future.result()
    assert info.value.args == ("because",)
    plain = aloop.sleep_cfuture(10)
    plain.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        plain.result()
    assert info.value.args == ()


def test_cancelling_a_sleep_cancels_its_timer(aloop):
    future = aloop.sleep_cfuture(0.01, "never")
    calls = []
    future.add_done_callback(lambda f: calls.append(f.cancelled()))
    future.cancel()
    aloop.call_later(0.05, aloop.stop)
    aloop.run_forever()
    assert calls == [True]
    assert future.cancelled()


def test_result_before_done_raises_invalid_state_error(aloop):
    future = aloop.sleep_cfuture(10)
    assert not future.done()
    with pytest.raises(asyncio.InvalidStateError):
        future.result()
    with pytest.raises(asyncio.InvalidStateError):
        future.exception()
    future.cancel()


def test_set_result_twice_raises_and_keeps_the_first(aloop):
    future = aloop.create_cfuture()
    first, second = Value(), Value()
    second_ref = weakref.ref(second)
    future.set_result(first)
    with pytest.raises(asyncio.InvalidStateError):
        future.set_result(second)
    del second
    assert second_ref() is None           # the refused value went back to Python
    assert future.result() is first
    with pytest.raises(asyncio.InvalidStateError):
        future.set_exception(ValueError())


def test_a_python_exception_comes_back_as_the_same_object(aloop):
    future = aloop.create_cfuture()
    error = ValueError("original")
    future.set_exception(error)
    assert future.done() and not future.cancelled()
    assert future.exception() is error
    with pytest.raises(ValueError) as info:
        future.result()
    assert info.value is error
    with pytest.raises(ValueError) as info:
        aloop.run_until_complete(future)
    assert info.value is error
    del info


def test_an_exception_set_while_handled_keeps_its_traceback_and_is_freed(aloop):
    future = aloop.create_cfuture()
    try:
        raise KeyError("raised first")
    except KeyError as exc:
        # exc's traceback holds this frame, which holds the future: a cycle
        # through C that the garbage collector must still be able to free.
        future.set_exception(exc)
        tb = exc.__traceback__
    lengths = []
    for _ in range(3):
        with pytest.raises(KeyError) as info:
            future.result()
        chain = tracebacks(info.value.__traceback__)
        assert chain[-1] is tb                 # it ends where it was first raised
        lengths.append(len(chain))
    assert lengths[0] == lengths[1] == lengths[2]   # and does not pile up
    del info, tb


def test_set_exception_takes_a_class_and_refuses_non_exceptions(aloop):
    future = aloop.create_cfuture()
    with pytest.raises(TypeError):
        future.set_exception("not an exception")
    with pytest.raises(TypeError):
        future.set_exception(StopIteration())
    future.set_exception(KeyError)
    assert type(future.exception()) is KeyError


def test_errors_of_the_library_map_to_python_exceptions(aloop):
    cases = [
        (-errno.ECONNRESET, None, ConnectionResetError),
        (lib.AIOS_ETIMEOUT, "took too long", TimeoutError),
        (lib.AIOS_EBROKENBARRIER, None, aioswift.AioswiftError),
    ]
    for code, message, expected in cases:
        future = aloop.create_cfuture()
        error = c_error(code, message)
        try:
            assert lib.aios_future_set_error(future._ptr, error) == 0
        finally:
            lib.aios_error_unref(error)
        with pytest.raises(expected) as info:
            future.result()
        if expected is ConnectionResetError:
            assert info.value.errno == errno.ECONNRESET
        if message is not None:
            assert str(info.value) == message
        if expected is aioswift.AioswiftError:
            assert info.value.code == code
        assert type(future.exception()) is type(info.value)


def test_a_cancelled_error_cannot_be_set_as_an_error(aloop):
    future = aloop.create_cfuture()
    error = c_error(lib.AIOS_ECANCELLED)
    try:
        assert lib.aios_future_set_error(future._ptr, error) == lib.AIOS_EINVAL
    finally:
        lib.aios_error_unref(error)
    assert not future.done()
    future.cancel()


def test_done_callbacks_are_scheduled_in_order_never_inline(aloop):
    future = aloop.create_cfuture()
    calls = []
    future.add_done_callback(lambda f: calls.append(("first", f is future, f.result())))
    future.add_done_callback(lambda f: calls.append(("second", f.result())))
    future.set_result(7)
    assert calls == []                   # scheduled, not run inline
    run_once(aloop)
    assert calls == [("first", True, 7), ("second", 7)]
    # Added to a done future: scheduled at once, still not inline.
    future.add_done_callback(lambda f: calls.append("late"))
    assert calls[-1] != "late"
    run_once(aloop)
    assert calls[-1] == "late"
    assert aloop._pending == {}
    assert future._callbacks == []


def test_remove_done_callback(aloop):
    future = aloop.create_cfuture()
    calls = []

    def keep(f):
        calls.append("keep")

    def drop(f):
        calls.append("drop")

    future.add_done_callback(drop)
    future.add_done_callback(keep)
    future.add_done_callback(drop)
    assert future.remove_done_callback(drop) == 2
    assert future.remove_done_callback(drop) == 0
    future.set_result(None)
    run_once(aloop)
    assert calls == ["keep"]
    assert aloop._pending == {}


def test_an_exception_in_a_done_callback_is_reported(aloop):
    reports = []
    aloop.set_exception_handler(lambda loop, context: reports.append(context))
    future = aloop.sleep_cfuture(0, "done")
    error = RuntimeError("in done callback")

    def bad(f):
        raise error

    future.add_done_callback(bad)
    run_once(aloop)
    assert len(reports) == 1
    assert reports[0]["exception"] is error
    assert reports[0]["message"].startswith("Exception in callback ")
    assert reports[0]["future"] is future


def test_an_error_never_retrieved_is_reported_when_the_future_is_freed(aloop):
    reports = []
    aloop.set_exception_handler(lambda loop, context: reports.append(context))
    future = aloop.create_cfuture()
    error = ValueError("nobody looked")
    future.set_exception(error)
    del future
    gc.collect()
    run_once(aloop)
    assert len(reports) == 1
    assert reports[0]["exception"] is error
    assert isinstance(reports[0]["message"], str)

    # A retrieved one is not reported.
    reports.clear()
    future = aloop.create_cfuture()
    future.set_exception(ValueError("seen"))
    future.exception()
    del future
    gc.collect()
    run_once(aloop)
    assert reports == []


def test_run_until_complete_stopped_early_raises_runtime_error(aloop):
    future = aloop.sleep_cfuture(10)
    aloop.call_soon(aloop.stop)
    with pytest.raises(RuntimeError, match="before Future completed"):
        aloop.run_until_complete(future)
    assert not future.done()
    future.cancel()


def test_run_until_complete_of_another_loops_future(aloop):
    other = aioswift.Loop()
    try:
        future = other.sleep_cfuture(0.001, "other")
        with pytest.raises(ValueError) as info:
            aloop.run_until_complete(future)
        assert isinstance(info.value, aioswift.WrongLoopError)
        assert info.value.code == lib.AIOS_EWRONGLOOP
        assert other.run_until_complete(future) == "other"
        del future
    finally:
        other.close()


def test_run_until_complete_takes_cfutures_and_asyncio_awaitables(aloop):
    assert aloop.run_until_complete(asyncio.sleep(0, "coroutine")) == "coroutine"
    assert aloop.run_until_complete(aloop.sleep_cfuture(0, "cfuture")) == "cfuture"
    with pytest.raises(TypeError):
        aloop.run_until_complete(42)


def test_run_until_complete_waits_for_the_future_not_for_timers(aloop):
    calls = []
    aloop.call_later(0.5, calls.append, "late timer")
    started = time.monotonic()
    assert aloop.run_until_complete(aloop.sleep_cfuture(0.001, 1)) == 1
    assert time.monotonic() - started < 0.4
    assert calls == []


def test_futures_on_a_closed_loop(aloop):
    pending = aloop.create_cfuture()
    aloop.close()
    with pytest.raises(RuntimeError):
        aloop.sleep_cfuture(0.1, Value())
    with pytest.raises(RuntimeError):
        aloop.create_cfuture()
    with pytest.raises(RuntimeError):
        aloop.run_until_complete(pending)
