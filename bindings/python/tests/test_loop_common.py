"""Event-loop behaviour that must be the same on asyncio's loop and aioswift's:
each test runs on both (the `any_loop` fixture)."""

import threading
import time

import pytest

# Timers are measured with the loop's own clock. libuv counts milliseconds, so
# a deadline may be met up to a millisecond before a finer clock says so.
CLOCK_SLACK = 0.002


def test_call_soon_runs_callbacks_fifo_with_their_args(any_loop):
    loop = any_loop
    calls = []

    def record(*args):
        calls.append(args)

    loop.call_soon(record, "a", 1)
    loop.call_soon(record)
    loop.call_soon(record, "b", None, 2.5)
    for i in range(20):
        loop.call_soon(record, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [("a", 1), (), ("b", None, 2.5)] + [(i,) for i in range(20)]


def test_callbacks_scheduled_by_a_callback_run_on_a_later_iteration(any_loop):
    loop = any_loop
    calls = []

    def first():
        calls.append("first")
        loop.call_soon(calls.append, "scheduled by first")

    loop.call_soon(first)
    loop.call_soon(calls.append, "second")
    loop.call_soon(loop.stop)       # stops after this iteration
    loop.run_forever()
    assert calls == ["first", "second"]

    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["first", "second", "scheduled by first"]


def test_stop_before_run_forever_runs_exactly_one_iteration(any_loop):
    loop = any_loop
    calls = []

    def first():
        calls.append("first")
        loop.call_soon(calls.append, "second")

    loop.call_soon(first)
    loop.stop()
    loop.run_forever()
    assert calls == ["first"]
    assert not loop.is_running()

    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["first", "second"]


def test_call_later_runs_timers_in_deadline_order_and_skips_cancelled(any_loop):
    loop = any_loop
    calls = []
    handles = {}

    def record(name):
        calls.append(name)
        assert loop.time() >= handles[name].when() - CLOCK_SLACK, name

    handles["c"] = loop.call_later(0.1, record, "c")
    handles["a"] = loop.call_later(0.01, record, "a")
    cancelled = loop.call_later(0.02, record, "x")
    handles["b"] = loop.call_later(0.01, record, "b")    # same delay, scheduled after a
    handles["b2"] = loop.call_later(0.02, record, "b2")
    handles["now"] = loop.call_later(0, record, "now")
    assert not cancelled.cancelled()
    cancelled.cancel()
    assert cancelled.cancelled()
    cancelled.cancel()                                   # a no-op
    assert cancelled.cancelled()
    loop.call_later(0.15, loop.stop)
    started = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - started < 1.0
    assert calls == ["now", "a", "b", "b2", "c"]
    assert not handles["a"].cancelled()


def test_call_later_zero_runs_on_the_next_iteration_even_when_nothing_else_is_ready(any_loop):
    loop = any_loop
    calls = []
    loop.call_later(0, calls.append, "zero")
    loop.call_later(0.02, loop.stop)
    started = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - started < 1.0
    assert calls == ["zero"]


def test_a_timer_that_fell_due_during_a_slow_callback_does_not_stall_the_loop(any_loop):
    loop = any_loop
    calls = []
    loop.call_later(0.01, calls.append, "overdue")
    loop.call_soon(time.sleep, 0.03)        # the timer is overdue afterwards
    loop.call_later(0.05, loop.stop)
    started = time.monotonic()
    loop.run_forever()
    assert time.monotonic() - started < 1.0
    assert calls == ["overdue"]


def test_call_later_deadline_is_time_plus_delay(any_loop):
    loop = any_loop
    before = loop.time()
    handle = loop.call_later(10.0, lambda: None)
    after = loop.time()
    assert before + 10.0 - CLOCK_SLACK <= handle.when() <= after + 10.0 + CLOCK_SLACK
    handle.cancel()


def test_call_at_runs_at_loop_time(any_loop):
    loop = any_loop
    calls = []
    now = loop.time()
    late = loop.call_at(now + 0.03, lambda: calls.append(("late", loop.time())))
    early = loop.call_at(now + 0.01, lambda: calls.append(("early", loop.time())))
    assert late.when() == pytest.approx(now + 0.03, abs=1e-3)
    assert early.when() == pytest.approx(now + 0.01, abs=1e-3)
    loop.call_at(now + 0.05, loop.stop)
    loop.run_forever()
    assert [name for name, _ in calls] == ["early", "late"]
    assert calls[0][1] >= early.when() - CLOCK_SLACK
    assert calls[1][1] >= late.when() - CLOCK_SLACK


def test_time_is_monotonic_and_advances_with_timers(any_loop):
    loop = any_loop
    samples = [loop.time()]

    def sample(n):
        samples.append(loop.time())
        if n:
            loop.call_soon(sample, n - 1)

    loop.call_soon(sample, 50)
    start = loop.time()
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    samples.append(loop.time())
    assert samples == sorted(samples)
    elapsed = loop.time() - start
    assert 0.05 - CLOCK_SLACK <= elapsed < 1.0


def test_call_soon_threadsafe_wakes_a_blocked_run_forever(any_loop):
    loop = any_loop
    ran = []

    def on_loop(n):
        ran.append((n, threading.get_ident()))
        if n == 2:
            loop.stop()

    def worker():
        time.sleep(0.05)      # the loop is blocked waiting by now
        for n in range(3):
            loop.call_soon_threadsafe(on_loop, n)

    watchdog = loop.call_later(10.0, loop.stop)
    thread = threading.Thread(target=worker)
    started = time.monotonic()
    thread.start()
    loop.run_forever()
    elapsed = time.monotonic() - started
    thread.join()
    watchdog.cancel()
    me = threading.get_ident()
    assert ran == [(0, me), (1, me), (2, me)]
    assert 0.04 <= elapsed < 5.0


def test_exception_in_callback_goes_to_the_handler_and_the_loop_goes_on(any_loop):
    loop = any_loop
    reports = []
    calls = []
    error = ValueError("boom")

    def bad():
        calls.append("bad")
        raise error

    loop.set_exception_handler(lambda lp, context: reports.append((lp, context)))
    handle = loop.call_soon(bad)
    loop.call_soon(calls.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["bad", "after"]
    assert len(reports) == 1
    reported_loop, context = reports[0]
    assert reported_loop is loop
    assert context["exception"] is error
    assert context["message"].startswith("Exception in callback ")
    assert "bad" in context["message"]
    assert context["handle"] is handle


def test_set_exception_handler_rejects_a_non_callable(any_loop):
    with pytest.raises(TypeError):
        any_loop.set_exception_handler(42)
    handler = lambda lp, context: None  # noqa: E731
    any_loop.set_exception_handler(handler)
    assert any_loop.get_exception_handler() is handler
    any_loop.set_exception_handler(None)
    assert any_loop.get_exception_handler() is None


def test_call_soon_on_a_closed_loop_raises_runtime_error(any_loop):
    loop = any_loop
    loop.close()
    assert loop.is_closed()
    with pytest.raises(RuntimeError):
        loop.call_soon(lambda: None)
    with pytest.raises(RuntimeError):
        loop.call_later(0.1, lambda: None)
    with pytest.raises(RuntimeError):
        loop.run_forever()
    loop.close()                # closing twice is a no-op


def test_close_and_run_forever_of_a_running_loop_raise_runtime_error(any_loop):
    loop = any_loop
    errors = []

    def inside():
        assert loop.is_running()
        for attempt in (loop.close, loop.run_forever):
            try:
                attempt()
            except RuntimeError as exc:
                errors.append(exc)
        loop.stop()

    loop.call_soon(inside)
    assert not loop.is_running()
    loop.run_forever()
    assert not loop.is_running()
    assert len(errors) == 2
    assert not loop.is_closed()


def test_debug_flag(any_loop):
    loop = any_loop
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_a_callback_can_cancel_a_later_one(any_loop):
    loop = any_loop
    calls = []
    later = loop.call_soon(calls.append, "later")
    loop.call_soon(later.cancel)
    loop.call_soon(calls.append, "other")
    run_once(loop)       # `later` was queued before the cancel: it ran
    assert calls == ["later", "other"]

    calls.clear()
    loop.call_soon(lambda: second.cancel())
    second = loop.call_soon(calls.append, "second")
    timer = loop.call_later(0.001, calls.append, "timer")
    loop.call_soon(timer.cancel)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert calls == []
    assert second.cancelled() and timer.cancelled()


def test_cancel_after_the_callback_ran_marks_it_cancelled(any_loop):
    calls = []
    handle = any_loop.call_soon(calls.append, 1)
    run_once(any_loop)
    assert calls == [1]
    assert not handle.cancelled()
    handle.cancel()
    assert handle.cancelled()


def test_handle_reprs(any_loop):
    loop = any_loop
    loop.set_debug(False)
    handle = loop.call_soon(print, "x")
    # (3.13 shows the arguments in debug mode only.)
    assert repr(handle).startswith("<Handle print(")
    handle.cancel()
    assert repr(handle) == "<Handle cancelled>"
    timer = loop.call_at(1e9, print)
    assert repr(timer).startswith("<TimerHandle when=1000000000")
    assert "print()" in repr(timer)
    timer.cancel()
    assert repr(timer).startswith("<TimerHandle cancelled when=1000000000")
    loop.set_debug(True)        # debug mode keeps the description of a cancelled one
    handle = loop.call_soon(print, "x")
    handle.cancel()
    assert repr(handle).startswith("<Handle cancelled print('x') created at ")


def test_callbacks_run_in_the_context_they_were_scheduled_in(any_loop):
    import contextvars
    var = contextvars.ContextVar("var", default="unset")
    seen = []
    var.set("at call_soon")
    any_loop.call_soon(lambda: seen.append(var.get()))
    any_loop.call_later(0, lambda: seen.append(var.get()))
    var.set("changed")
    other = contextvars.Context()
    any_loop.call_soon(lambda: seen.append(var.get()), context=other)
    any_loop.call_later(0.01, any_loop.stop)
    any_loop.run_forever()
    assert seen == ["at call_soon", "unset", "at call_soon"]


def test_a_threadsafe_handle_can_be_cancelled_from_its_thread(any_loop):
    calls = []
    made = []

    def worker():
        handle = any_loop.call_soon_threadsafe(calls.append, "threadsafe")
        handle.cancel()
        made.append(handle)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert made[0].cancelled()
    run_once(any_loop)
    assert calls == []


def test_the_default_exception_handler_logs_to_asyncio(any_loop, caplog):
    import logging

    def bad():
        raise KeyError("missing")

    any_loop.call_soon(bad)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run_once(any_loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].getMessage().startswith("Exception in callback ")
    assert "handle: <Handle" in records[0].getMessage()
    assert records[0].exc_info[0] is KeyError
    caplog.clear()


def test_an_error_in_the_custom_handler_goes_to_the_default_one(any_loop, caplog):
    import logging

    def handler(loop, context):
        raise RuntimeError("handler broke")

    any_loop.set_exception_handler(handler)
    any_loop.call_soon(lambda: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run_once(any_loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].getMessage().startswith("Unhandled error in exception handler")
    assert records[0].exc_info[0] is RuntimeError
    caplog.clear()          # the records hold the handle, through tracebacks


def test_call_exception_handler_with_a_custom_and_the_default_handler(any_loop, caplog):
    import logging
    seen = []
    any_loop.set_exception_handler(lambda loop, context: seen.append((loop, context)))
    any_loop.call_exception_handler({"message": "hello", "extra": 1})
    assert seen == [(any_loop, {"message": "hello", "extra": 1})]
    any_loop.set_exception_handler(None)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        any_loop.call_exception_handler({"message": "to the log", "extra": 2})
    assert "to the log\nextra: 2" in caplog.records[-1].getMessage()
    any_loop.default_exception_handler({})
    assert caplog.records[-1].getMessage() == "Unhandled exception in event loop"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_a_callback_stops_the_loop_and_is_raised(any_loop, exc_type):
    calls = []

    def interrupt():
        raise exc_type

    any_loop.call_soon(interrupt)
    with pytest.raises(exc_type):
        any_loop.run_forever()
    assert not any_loop.is_running()
    any_loop.call_soon(calls.append, "still usable")
    run_once(any_loop)
    assert calls[-1] == "still usable"


def test_an_interrupt_raised_by_the_exception_handler_propagates(any_loop):
    def handler(loop, context):
        raise KeyboardInterrupt

    any_loop.set_exception_handler(handler)
    any_loop.call_soon(lambda: 1 / 0)
    with pytest.raises(KeyboardInterrupt):
        run_once(any_loop)
    run_once(any_loop)


def test_the_exception_handler_sees_the_cancelled_error_of_a_callback(any_loop):
    import asyncio
    reports = []
    any_loop.set_exception_handler(lambda loop, context: reports.append(context))
    error = asyncio.CancelledError("from a callback")

    def cancelled():
        raise error

    any_loop.call_soon(cancelled)
    run_once(any_loop)
    assert [c["exception"] for c in reports] == [error]


def test_slow_callbacks_are_logged_in_debug_mode(any_loop, caplog):
    import logging
    any_loop.set_debug(True)
    any_loop.slow_callback_duration = 0.05    # far above what sleep(0) takes, even loaded
    assert any_loop.slow_callback_duration == 0.05
    any_loop.call_soon(time.sleep, 0.15)
    any_loop.call_soon(time.sleep, 0)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run_once(any_loop)
    slow = [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and r.getMessage().startswith("Executing ")]
    assert len(slow) == 1
    assert slow[0].startswith("Executing <Handle sleep(0.15) created at ")
    assert slow[0].endswith(" seconds")
    caplog.clear()          # the records hold the handle


def test_debug_mode_checks_callbacks_and_threads(any_loop):
    loop = any_loop
    loop.set_debug(True)

    async def coro():
        pass

    for schedule in (lambda cb: loop.call_soon(cb), lambda cb: loop.call_later(1, cb),
                     lambda cb: loop.call_at(1, cb), lambda cb: loop.call_soon_threadsafe(cb)):
        with pytest.raises(TypeError, match="coroutines cannot be used"):
            schedule(coro)
        with pytest.raises(TypeError, match="a callable object was expected"):
            schedule(42)
    handle = loop.call_soon(print)
    assert handle._source_traceback[-1][0] == __file__
    handle.cancel()

    errors = []

    def other_thread():
        try:
            loop.call_soon(print)
        except RuntimeError as exc:
            errors.append(exc)

    def inside():
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        loop.stop()

    loop.call_soon(inside)
    loop.run_forever()
    assert len(errors) == 1 and "Non-thread-safe operation" in str(errors[0])


def test_time_is_time_monotonic(any_loop):
    a = time.monotonic()
    b = any_loop.time()
    c = time.monotonic()
    assert a <= b <= c


def test_call_soon_threadsafe_from_another_thread_keeps_its_place_before_a_later_call_soon(any_loop):
    # asyncio has one ready queue: a threadsafe call another thread made
    # before this thread's call_soon runs first (CPython's
    # test_events.test_call_soon_threadsafe checks the same).
    loop = any_loop
    results = []

    def sender():
        loop.call_soon_threadsafe(results.append, "threadsafe, first")

    thread = threading.Thread(target=sender)
    thread.start()
    thread.join()
    loop.call_soon(results.append, "call_soon, second")

    def inside():
        thread = threading.Thread(target=sender)
        thread.start()
        thread.join()
        loop.call_soon(results.append, "call_soon, second")
        loop.call_soon(loop.stop)

    loop.call_soon(inside)
    loop.run_forever()
    assert results == ["threadsafe, first", "call_soon, second"] * 2


def test_a_child_forked_while_the_loop_runs_can_run_a_loop_of_its_own(any_loop):
    # asyncio's forked child forgets its parent's running loop: the loop it
    # makes must run (ProcessPoolExecutor's workers do this under fork).
    import asyncio
    import os
    import warnings

    loop = any_loop

    def in_child():
        try:
            if asyncio._get_running_loop() is not None:
                return 2
            own = type(loop)()
            try:
                return 0 if own.run_until_complete(asyncio.sleep(0, "ran")) == "ran" else 3
            finally:
                own.close()
        except BaseException:
            return 4

    async def main():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
            pid = os.fork()
        if pid == 0:
            os._exit(in_child())
        return pid

    pid = loop.run_until_complete(main())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
