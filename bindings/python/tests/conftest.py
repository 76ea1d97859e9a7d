"""Fixtures of aioswift's tests.

`any_loop` runs one test body on the stock asyncio loop and on aioswift's, as
CPython's CFutureTests / PyFutureTests do: what passes on asyncio and fails on
aioswift is a difference of behaviour. `aloop` is aioswift's alone. Both check,
after a passing test, that the library holds no more handles, futures, tasks
or errors than before, that no native Handle object outlived the test
(gc.get_objects), and that every Python value handed to C was released
exactly once (the MAKE_VALGRIND_HAPPY of this suite).
"""

import asyncio
import gc
import os
import socket
import sys
import threading

import pytest

import aioswift
from aioswift import _runtime

LOOP_KINDS = ["asyncio", "aioswift"]

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def header_path():
    """The header the extension was built against (build/ first)."""
    for path in (os.path.join(REPO, "build", "include", "aio_swift.h"),
                 os.path.join(REPO, "include", "aio_swift.h")):
        if os.path.isfile(path):
            return path
    pytest.skip("aio_swift.h not found")


def new_loop(kind):
    if kind == "asyncio":
        return asyncio.new_event_loop()
    return aioswift.new_event_loop()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "strands_core_loop: the test leaves a core loop on a thread that has "
        "ended (the core frees a thread's objects on that thread only)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# Loops too: a loop lets go of its core loop when it is closed (the fixtures
# close theirs before the check).
CHECKED_TYPES = ("loop", "handle", "future", "task", "error", "runner", "transport", "server",
                 "subprocess")


def _snapshot():
    # pytest keeps the last failure's traceback (for post-mortems), and with
    # it that test's objects: let them go first.
    sys.last_type = sys.last_value = sys.last_traceback = None
    if hasattr(sys, "last_exc"):
        sys.last_exc = None
    gc.collect()
    # What another thread let go of that belongs to this one is freed at this
    # thread's next unref (a loop that moved between threads leaves some).
    error = aioswift.ffi.new("aios_error_t **")
    if aioswift.lib.aios_error_new(aioswift.lib.AIOS_EINVAL, aioswift.ffi.NULL, error) == 0:
        aioswift.lib.aios_error_unref(error[0])
    counts = aioswift.live_objects()
    handles = sum(isinstance(o, aioswift.Handle) for o in gc.get_objects())
    return ({name: counts[name] for name in CHECKED_TYPES},
            _runtime.boxed_count(), dict(_runtime.stats), handles)


@pytest.fixture
def leakcheck(request):
    before = _snapshot()
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.passed:
        return      # a failure's traceback keeps its objects alive
    after = _snapshot()
    if request.node.get_closest_marker("strands_core_loop"):
        # The loop ran on a thread that has ended and was closed elsewhere:
        # the core loop made for that thread can only be freed on it.
        after[0].pop("loop")
        before[0].pop("loop")
    assert after[0] == before[0], "library objects leaked (live counts)"
    assert after[1] == before[1], "Python values given to C were not released"
    assert after[2] == before[2], "a destructor or callback came with an unknown pointer"
    assert after[3] == before[3], "native Handle objects leaked (gc.get_objects)"


def _close(loop):
    if loop.is_running():
        loop.stop()
    if not loop.is_closed():
        loop.close()
    # A test's handler often keeps what it was told (and so, futures).
    loop.set_exception_handler(None)


# No test runs a loop this long: a loop that hangs is stopped from another
# thread (call_soon_threadsafe wakes it), so the test fails instead of hanging
# the suite.
WATCHDOG_SECONDS = 30.0


class Watchdog:
    def __init__(self, loop):
        self.loop = loop
        self.fired = False
        self.timer = threading.Timer(WATCHDOG_SECONDS, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self):
        self.fired = True
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except Exception:
            pass

    def cancel(self, request):
        self.timer.cancel()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            return      # the test failed already, hung or not
        assert not self.fired, f"the loop hung: stopped after {WATCHDOG_SECONDS} s"


@pytest.fixture(params=LOOP_KINDS)
def any_loop(request, leakcheck):
    loop = new_loop(request.param)
    watchdog = Watchdog(loop)
    yield loop
    watchdog.cancel(request)
    _close(loop)


@pytest.fixture
def aloop(request, leakcheck):
    loop = aioswift.new_event_loop()
    watchdog = Watchdog(loop)
    yield loop
    watchdog.cancel(request)
    _close(loop)
    assert loop._pending == {}
    assert loop._core.pending == 0


def has_ipv6():
    """Whether the machine can bind ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# The loopback hosts the network tests run on.
HOSTS = ["127.0.0.1"] + (["::1"] if has_ipv6() else [])
