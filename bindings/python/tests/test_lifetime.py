"""Objects of the library that Python holds: none outlives its use."""

import gc
import warnings
import weakref

import pytest

import aioswift
from aioswift import _runtime, lib


def collect():
    gc.collect()
    return aioswift.live_objects()


def test_live_objects_return_to_the_baseline_after_close():
    baseline = collect()
    boxed = _runtime.boxed_count()
    loop = aioswift.new_event_loop()
    assert aioswift.live_objects()["loop"] == baseline["loop"] + 1
    calls = []
    ran = [loop.call_soon(calls.append, i) for i in range(3)]
    cancelled = loop.call_later(0.001, calls.append, "cancelled")
    cancelled.cancel()
    pending = [loop.call_later(10, calls.append, "pending"),
               loop.call_soon_threadsafe(calls.append, "pending too")]
    done = loop.sleep_cfuture(0.001, object())
    waiting = loop.sleep_cfuture(10)
    failed = loop.create_cfuture()
    failed.set_exception(ValueError("kept"))
    loop.set_exception_handler(lambda lp, context: None)
    counts = aioswift.live_objects()
    assert counts["handle"] >= baseline["handle"] + 1     # the pending timer
    assert counts["future"] >= baseline["future"] + 3
    assert loop.run_until_complete(done) is not None
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [0, 1, 2, "pending too"]

    loop.close()
    assert loop.is_closed()
    assert loop._pending == {}
    del ran, cancelled, pending
    del done, waiting, failed       # a sleep holds its timer's handle
    counts = collect()
    assert counts["handle"] == baseline["handle"]
    assert counts["future"] == baseline["future"]
    assert counts["error"] == baseline["error"]
    assert _runtime.boxed_count() == boxed
    del loop
    assert collect() == baseline
    assert _runtime.stats == {"unknown_release": 0, "lost_callback": 0}


class Value:
    pass


@pytest.mark.parametrize("how", ["pending at close", "cancelled, then closed"])
def test_the_value_of_an_unfinished_sleep_is_released_when_it_is_freed(how):
    # aios_sleep owns `value` "as by aios_future_set_result": its destructor is
    # called exactly once when the future is freed, finished or not.
    boxed = _runtime.boxed_count()
    loop = aioswift.new_event_loop()
    value = Value()
    value_ref = weakref.ref(value)
    future = loop.sleep_cfuture(10, value)
    del value
    if how.startswith("cancelled"):
        assert future.cancel()
    loop.close()
    del future
    del loop
    gc.collect()
    assert value_ref() is None
    assert _runtime.boxed_count() == boxed
    assert _runtime.stats["unknown_release"] == 0


def test_a_loop_that_was_not_closed_warns_and_is_freed():
    baseline = collect()
    loop = aioswift.new_event_loop()
    loop.call_later(10, print, "never")
    loop.close()
    del loop
    assert collect() == baseline

    loop = aioswift.new_event_loop()
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        del loop
        gc.collect()
    assert collect() == baseline


def test_a_closed_loop_refuses_everything():
    loop = aioswift.new_event_loop()
    loop.close()
    loop.close()                               # a no-op
    for call in (lambda: loop.call_soon(print),
                 lambda: loop.call_later(1, print),
                 lambda: loop.call_at(loop.time() + 1, print),
                 lambda: loop.call_soon_threadsafe(print),
                 loop.run_forever, loop.create_cfuture):
        with pytest.raises(aioswift.LoopClosedError, match="Event loop is closed") as info:
            call()
        assert isinstance(info.value, RuntimeError)
        assert info.value.code == lib.AIOS_ECLOSED
    assert loop._core.pending == 0
    assert not loop.is_running()


def test_a_closed_loop_is_freed_without_the_collector():
    # The loop object and its Core refer to each other (the hot-path methods
    # on the instance): the collector frees them. Nothing else is left.
    loop = aioswift.new_event_loop()
    handle = loop.call_soon(print, "x")
    handle.cancel()
    loop.close()
    loop_ref = weakref.ref(loop)
    handle_ref = weakref.ref(handle)
    with warnings.catch_warnings():
        warnings.simplefilter("error")         # a closed loop does not warn
        del loop, handle
        gc.collect()
    assert loop_ref() is None
    assert handle_ref() is None


def test_version():
    major, minor, patch = (lib.AIOS_VERSION_MAJOR, lib.AIOS_VERSION_MINOR,
                           lib.AIOS_VERSION_PATCH)
    assert aioswift.version() == f"{major}.{minor}.{patch}"
    assert aioswift.version_info() == (major, minor, patch)
    assert lib.aios_version() == lib.AIOS_VERSION_HEX
