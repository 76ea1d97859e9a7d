"""aioswift's native handles: what the core holds for Python, and when Python
lets go. (Behaviour that must match asyncio's is in test_loop_common.py.)"""

import contextvars
import gc
import sys
import threading
import weakref

import pytest

import aioswift
from aioswift import _native


class Arg:
    """An argument that can be watched with a weakref."""


def run_once(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_the_hot_path_is_native_on_the_loop_object(aloop):
    # asyncio's C Task looks up loop.call_soon: it must find a C function,
    # not a Python method.
    for name in ("call_soon", "call_soon_threadsafe", "call_later", "call_at"):
        method = getattr(aloop, name)
        assert type(method).__name__ == "builtin_function_or_method", name
        assert method.__self__ is aloop._core
    assert type(aloop.get_debug).__name__ == "builtin_function_or_method"


def test_a_subclass_that_overrides_call_soon_keeps_its_own():
    calls = []

    class Mine(aioswift.Loop):
        def call_soon(self, callback, *args, context=None):
            calls.append(callback)
            return super().call_soon(callback, *args, context=context)

    loop = Mine()
    try:
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert calls == [loop.stop]
    finally:
        loop.close()


def test_pending_callbacks_are_held_until_they_ran(aloop):
    calls = []
    handles = [aloop.call_soon(calls.append, i) for i in range(3)]
    timer = aloop.call_later(0.001, calls.append, "timer")
    assert aloop._core.pending == 4
    assert all(h._scheduled for h in handles + [timer])
    aloop.call_later(0.02, aloop.stop)
    aloop.run_forever()
    assert calls == [0, 1, 2, "timer"]
    assert aloop._core.pending == 0
    # A handle that ran is no longer the core's; as asyncio's, it keeps its
    # callback (for its repr) while it lives.
    assert all(not h._scheduled and h._callback == calls.append for h in handles + [timer])
    assert not any(h.cancelled() for h in handles)


@pytest.mark.parametrize("nargs", [0, 1, 3, 4, 7])
def test_callbacks_get_their_arguments_inline_or_in_a_tuple(aloop, nargs):
    got = []
    args = tuple(Arg() for _ in range(nargs))
    handle = aloop.call_soon(lambda *a: got.append(a), *args)
    assert handle._args == args
    run_once(aloop)
    assert got == [args]


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
    timer = aloop.call_later(5, calls.append, arg)
    assert sys.getrefcount(arg) > refs_before
    soon = aloop.call_soon(calls.append, arg)
    assert aloop._core.pending == 2
    timer.cancel()
    soon.cancel()
    assert timer.cancelled() and soon.cancelled()
    assert sys.getrefcount(arg) == refs_before
    # The (far) timer left the core's heap at once; the call_soon stays
    # queued (without its callback) until its turn, as in asyncio's _ready.
    assert not timer._scheduled
    assert aloop._core.pending == 1
    timer.cancel()            # cancelling twice is a no-op
    aloop.call_later(0.03, aloop.stop)
    aloop.run_forever()
    assert calls == []
    assert aloop._core.pending == 0


def test_many_cancelled_timers_do_not_pile_up(aloop):
    for _ in range(10000):
        aloop.call_later(3600, print).cancel()
    assert aloop._core.pending == 0
    gc.collect()
    assert sum(type(o) is aioswift.TimerHandle for o in gc.get_objects()) == 0


def test_a_cancelled_near_timer_waits_in_the_heap_until_it_is_due(aloop):
    # Timers due within NEAR_TIMER (1 s) are cancelled by flag: the core
    # keeps the (emptied) handle until its deadline, as asyncio keeps
    # cancelled timers in its heap; the callback and arguments go at once.
    arg = Arg()
    ref = weakref.ref(arg)
    near = aloop.call_later(0.01, print, arg)
    far = aloop.call_later(10, print, arg)
    near.cancel()
    far.cancel()
    del arg
    assert ref() is None
    assert near._scheduled and not far._scheduled
    aloop.call_later(0.03, aloop.stop)
    aloop.run_forever()
    assert not near._scheduled
    assert aloop._core.pending == 0


def test_cancelling_its_own_handle_while_running_is_harmless(aloop):
    calls = []
    box = {}

    def callback(x):
        box["handle"].cancel()
        calls.append(x)          # still has its argument

    box["handle"] = aloop.call_soon(callback, "x")
    run_once(aloop)
    assert calls == ["x"]
    assert box["handle"].cancelled()


def test_close_drops_pending_callbacks_and_their_arguments(aloop):
    arg = Arg()
    arg_ref = weakref.ref(arg)
    handles = [aloop.call_soon(print, arg), aloop.call_later(5, print, arg),
               aloop.call_at(aloop.time() + 5, print, arg),
               aloop.call_soon_threadsafe(print, arg)]
    del arg
    assert arg_ref() is not None
    assert aloop._core.pending == 4
    aloop.close()
    assert aloop._core.pending == 0
    assert arg_ref() is None
    assert all(not h._scheduled for h in handles)


def test_timer_handle_when_is_on_the_monotonic_clock(aloop):
    import time
    before = time.monotonic()
    handle = aloop.call_later(3.5, lambda: None)
    after = time.monotonic()
    assert isinstance(handle, aioswift.TimerHandle)
    assert isinstance(handle, aioswift.Handle)
    assert before + 3.5 <= handle.when() <= after + 3.5
    handle.cancel()
    at = aloop.call_at(123.25, lambda: None)
    assert at.when() == 123.25
    at.cancel()
    soon = aloop.call_soon(lambda: None)
    assert type(soon) is aioswift.Handle
    assert not hasattr(soon, "when")
    soon.cancel()


def test_a_nan_deadline_is_refused(aloop):
    with pytest.raises(ValueError):
        aloop.call_at(float("nan"), print)
    with pytest.raises(ValueError):
        aloop.call_later(float("nan"), print)
    assert aloop._core.pending == 0


def test_bad_arguments_to_the_native_calls(aloop):
    with pytest.raises(TypeError):
        aloop.call_soon()
    with pytest.raises(TypeError):
        aloop.call_later(1)
    with pytest.raises(TypeError):
        aloop.call_later("soon", print)
    with pytest.raises(TypeError, match="unexpected keyword argument 'ctx'"):
        aloop.call_soon(print, ctx=None)
    with pytest.raises(TypeError):
        aloop.call_later(None, print)
    with pytest.raises(TypeError):
        aloop.call_at(None, print)
    assert aloop._core.pending == 0


def test_a_context_that_is_not_a_context_is_reported_when_it_runs(aloop):
    reports = []
    aloop.set_exception_handler(lambda loop, context: reports.append(context))
    aloop.call_soon(print, context=42)
    run_once(aloop)
    assert len(reports) == 1
    assert isinstance(reports[0]["exception"], TypeError)


def test_handles_are_weakly_referenceable_and_collected(aloop):
    handle = aloop.call_soon(print, "x")
    ref = weakref.ref(handle)
    handle.cancel()
    del handle
    assert ref() is not None          # the core's queue still holds it...
    run_once(aloop)
    assert ref() is None              # ...until its turn


def test_a_cycle_through_a_pending_handle_is_collected():
    # loop -> core -> pending handle -> callback -> loop: nothing outside
    # holds them; the collector finds the cycle (the Core visits its pending
    # handles) and the loop is freed (with asyncio's unclosed-loop warning).
    loop = aioswift.new_event_loop()

    class Holder:
        pass

    holder = Holder()
    holder.loop = loop
    loop.call_soon(lambda: holder)
    loop.call_later(100, lambda: holder)
    ref = weakref.ref(holder)
    loop_ref = weakref.ref(loop)
    del holder, loop
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        gc.collect()
    gc.collect()
    assert ref() is None
    assert loop_ref() is None


def test_call_soon_threadsafe_from_many_threads_keeps_each_threads_order(aloop):
    got = []
    per_thread = 500

    def worker(name):
        for i in range(per_thread):
            aloop.call_soon_threadsafe(got.append, (name, i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]

    def poll():
        if len(got) == 4 * per_thread:
            aloop.stop()
        else:
            aloop.call_later(0.002, poll)

    for t in threads:
        t.start()
    aloop.call_soon(poll)
    aloop.run_forever()
    for t in threads:
        t.join()
    assert len(got) == 4 * per_thread
    for n in range(4):
        assert [i for name, i in got if name == n] == list(range(per_thread))
    assert aloop._core.pending == 0


def test_call_soon_from_another_thread_while_it_runs_is_refused(aloop):
    # asyncio lets it through outside debug mode (and corrupts nothing only
    # by luck); the core's loops belong to their thread while they run.
    errors = []

    def worker():
        try:
            aloop.call_soon(print, "never")
        except RuntimeError as exc:
            errors.append(exc)

    def inside():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        aloop.stop()

    aloop.call_soon(inside)
    aloop.run_forever()
    assert len(errors) == 1
    assert "Non-thread-safe operation" in str(errors[0])
    assert isinstance(errors[0], aioswift.WrongThreadError)
    assert aloop._core.pending == 0


def test_a_loop_that_is_not_running_moves_to_the_thread_that_uses_it(aloop):
    calls = []
    aloop.call_soon(calls.append, 1)
    timer = aloop.call_later(3600, calls.append, "far")
    cancelled = aloop.call_soon(calls.append, "cancelled")
    cancelled.cancel()
    moves = aloop._core.moves

    def worker():
        aloop.call_soon(calls.append, 2)          # here: the loop comes along
        aloop.call_soon(aloop.stop)
        aloop.run_forever()
        calls.append((timer._scheduled, aloop._core.pending))
        # Closed here: a loop the core made for this thread must be closed
        # before the thread ends (the core frees a thread's objects on that
        # thread only).
        aloop.close()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert calls == [1, 2, (True, 1)]
    assert aloop._core.moves == moves + 1
    assert aloop._core.pending == 0


def test_keyboard_interrupt_puts_the_rest_of_the_iteration_back(aloop):
    calls = []

    def interrupt():
        calls.append("interrupt")
        raise KeyboardInterrupt

    aloop.call_soon(calls.append, "before")
    aloop.call_soon(interrupt)
    after = aloop.call_soon(calls.append, "after")
    with pytest.raises(KeyboardInterrupt):
        aloop.run_forever()
    assert calls == ["before", "interrupt"]
    assert after._scheduled
    run_once(aloop)
    assert calls == ["before", "interrupt", "after"]


def test_the_context_of_a_handle(aloop):
    ctx = contextvars.copy_context()
    handle = aloop.call_soon(print, context=ctx)
    assert handle.get_context() is ctx
    assert handle._context is ctx
    handle.cancel()
    implicit = aloop.call_soon(print)
    assert isinstance(implicit.get_context(), contextvars.Context)
    implicit.cancel()


def test_the_native_clock_is_time_monotonic():
    import time
    a = time.monotonic()
    b = _native.monotonic()
    c = time.monotonic()
    assert a <= b <= c


def _refcounts(*objects):
    return [sys.getrefcount(o) for o in objects]


def test_no_reference_is_lost_or_kept_on_any_path(aloop):
    # Every way in and out of the native scheduling: ran, raised, cancelled,
    # refused (closed loop, bad time, debug checks), put back by an
    # interrupt, dropped by close. The callback, its arguments and its
    # context come back to their reference counts.
    def callback(*args):
        pass

    def raising(*args):
        raise ValueError("reported")

    arg, ctx = Arg(), contextvars.copy_context()
    before = _refcounts(callback, raising, arg, ctx)
    aloop.set_exception_handler(lambda loop, context: None)
    for _ in range(3):
        aloop.call_soon(callback, arg, context=ctx)
        aloop.call_soon(raising, arg, arg, arg, arg, context=ctx)   # tuple path
        aloop.call_later(0, callback, arg, context=ctx)
        aloop.call_soon(callback, arg, context=ctx).cancel()
        aloop.call_later(10, callback, arg, context=ctx).cancel()
        aloop.call_soon_threadsafe(callback, arg, context=ctx)
        with pytest.raises(ValueError):
            aloop.call_at(float("nan"), callback, arg, context=ctx)
        aloop.call_later(0.001, aloop.stop)
        aloop.run_forever()
    aloop.set_debug(True)
    with pytest.raises(TypeError):
        aloop.call_soon(42, arg, context=ctx)
    aloop.set_debug(False)

    def interrupt():
        raise KeyboardInterrupt

    aloop.call_soon(interrupt)
    aloop.call_soon(callback, arg, context=ctx)
    with pytest.raises(KeyboardInterrupt):
        aloop.run_forever()
    aloop.call_soon(aloop.stop)
    aloop.run_forever()
    aloop.call_soon(callback, arg, context=ctx)
    aloop.call_later(5, callback, arg, context=ctx)
    aloop.close()
    with pytest.raises(RuntimeError):
        aloop.call_soon(callback, arg, context=ctx)
    aloop.set_exception_handler(None)
    gc.collect()
    assert _refcounts(callback, raising, arg, ctx) == before


def test_the_handle_freelist_gives_fresh_handles(aloop):
    aloop.set_debug(False)
    first = aloop.call_soon(print, "a")
    first_id = id(first)
    first.cancel()
    run_once(aloop)
    del first
    again = aloop.call_later(1, print)            # may reuse the memory
    assert type(again) is aioswift.TimerHandle
    assert not again.cancelled() and again._scheduled
    assert again._source_traceback is None
    again.cancel()
    soon = aloop.call_soon(print)
    assert type(soon) is aioswift.Handle and not soon.cancelled()
    soon.cancel()
    assert isinstance(first_id, int)
