"""C code and Python code on one loop: a Python coroutine awaits a future or a
task made by C code (loop.wrap_cfuture), a C task awaits a Python future
(loop.as_cfuture), cancellation goes from the awaiting side to the awaited
one on both sides, and C and Python callbacks share one FIFO.

The C side is a small cffi module compiled at test time against the header
and the library aioswift itself loaded (one runtime in the process): C step
functions, a C-made future, and a callback scheduled with aios_loop_call_soon.
"""

import asyncio
import errno
import gc
import importlib.util
import os
import sys
import threading
import time
import weakref

import pytest

import aioswift
from aioswift import ffi, lib

from conftest import REPO, header_path

C_CDEF = """
typedef struct aios_loop_s aios_loop_t;
typedef struct aios_future_s aios_future_t;
typedef struct aios_task_s aios_task_t;

typedef struct probe_s {
    int steps;          /* how many times the task's step ran */
    int outcome;        /* what it saw: 0 nothing yet, 1 result, 2 error, 3 cancelled */
    int status;         /* aios_future_result's status of what it awaited */
    int released;       /* times the task's argument was released */
    char message[64];   /* the error's or the cancellation's message */
    ...;
} probe_t;

int interop_relay(aios_future_t *future, probe_t *probe, aios_task_t **out);
int interop_sleeper(aios_loop_t *loop, double delay, long value, int fail_code,
                    probe_t *probe, aios_task_t **out);
int interop_sleep_future(aios_loop_t *loop, double delay, long value, aios_future_t **out);
int interop_call_soon_mark(aios_loop_t *loop, int mark);
void interop_mark(int mark);

extern long interop_values_freed;
extern int interop_nmarks;
extern int interop_marks[64];
"""

C_SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "aio_swift.h"

typedef struct probe_s {
    int steps;
    int outcome;
    int status;
    int released;
    char message[64];
    aios_loop_t *loop;          /* sleeper: borrowed, the test holds the loop */
    aios_future_t *awaited;     /* relay: one reference until the first step */
    double delay;
    long value;
    int fail_code;
} probe_t;

long interop_values_freed;
int interop_nmarks;
int interop_marks[64];

static void free_value(void *value) {
    free(value);
    interop_values_freed++;
}

static void release_probe(void *arg) {
    probe_t *probe = (probe_t *)arg;
    probe->released++;
    aios_future_unref(probe->awaited);      /* a task cancelled before its first step */
    probe->awaited = NULL;
}

static void keep_message(probe_t *probe, aios_error_t *error) {
    const char *message = error != NULL ? aios_error_message(error) : NULL;
    probe->message[0] = 0;
    if (message != NULL) {
        strncpy(probe->message, message, sizeof probe->message - 1);
        probe->message[sizeof probe->message - 1] = 0;
    }
}

/* The outcome of `awaited` (done) becomes the task's: the result value moves
 * over with its destructor, an error or a cancellation is failed with. */
static int finish_as(aios_task_t *task, aios_future_t *awaited, probe_t *probe) {
    void *value = NULL;
    aios_destructor_fn destructor = NULL;
    aios_error_t *error = NULL;
    int rc;
    probe->status = aios_future_take_result(awaited, &value, &destructor);
    if (probe->status == 0) {
        probe->outcome = 1;
        rc = aios_task_return(task, value, destructor);
        if (rc < 0 && destructor != NULL)
            destructor(value);
        return rc;
    }
    probe->outcome = aios_future_cancelled(awaited) == 1 ? 3 : 2;
    rc = aios_future_error(awaited, &error);
    if (rc < 0)
        return rc;
    keep_message(probe, error);
    rc = aios_task_fail(task, error);      /* a CANCELLED error: the task is cancelled */
    aios_error_unref(error);
    return rc;
}

static int relay_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
    probe_t *probe = (probe_t *)arg;
    probe->steps++;
    if (probe->steps == 1) {
        aios_future_t *future = probe->awaited;
        probe->awaited = NULL;
        return aios_task_await_owned(task, future);
    }
    if (awaited == NULL)
        return AIOS_EINVAL;
    return finish_as(task, awaited, probe);
}

/* A task that awaits `future`, then finishes as it did. */
int interop_relay(aios_future_t *future, probe_t *probe, aios_task_t **out) {
    aios_loop_t *loop = NULL;
    aios_task_options_t options;
    int rc = aios_future_get_loop(future, &loop);
    if (rc < 0)
        return rc;
    rc = aios_future_ref(future);
    if (rc < 0) {
        aios_loop_unref(loop);
        return rc;
    }
    probe->awaited = future;
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    options.name = "c-relay";
    options.arg_destructor = release_probe;
    rc = aios_task_new(loop, relay_step, probe, &options, out);
    if (rc < 0) {
        aios_future_unref(future);
        probe->awaited = NULL;
    }
    aios_loop_unref(loop);
    return rc;
}

static int sleeper_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
    probe_t *probe = (probe_t *)arg;
    probe->steps++;
    if (probe->steps == 1) {
        aios_future_t *sleep = NULL;
        long *value = malloc(sizeof *value);
        int rc;
        if (value == NULL)
            return -ENOMEM;
        *value = probe->value;
        rc = aios_sleep(probe->loop, probe->delay, value, free_value, &sleep);
        if (rc < 0) {
            free(value);
            return rc;
        }
        return aios_task_await_owned(task, sleep);
    }
    if (awaited == NULL)
        return AIOS_EINVAL;
    if (probe->fail_code != 0 && aios_future_cancelled(awaited) == 0) {
        probe->outcome = 2;
        return probe->fail_code;            /* fails the task with that code */
    }
    return finish_as(task, awaited, probe);
}

/* A task that sleeps `delay` seconds and returns a malloc'd long `value`
 * (freed with a counting destructor), or fails with `fail_code`. */
int interop_sleeper(aios_loop_t *loop, double delay, long value, int fail_code,
                    probe_t *probe, aios_task_t **out) {
    aios_task_options_t options;
    probe->loop = loop;
    probe->delay = delay;
    probe->value = value;
    probe->fail_code = fail_code;
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    options.name = "c-sleeper";
    options.arg_destructor = release_probe;
    return aios_task_new(loop, sleeper_step, probe, &options, out);
}

/* A plain C future: aios_sleep with a malloc'd long result. */
int interop_sleep_future(aios_loop_t *loop, double delay, long value, aios_future_t **out) {
    long *boxed = malloc(sizeof *boxed);
    int rc;
    if (boxed == NULL)
        return -ENOMEM;
    *boxed = value;
    rc = aios_sleep(loop, delay, boxed, free_value, out);
    if (rc < 0)
        free(boxed);
    return rc;
}

void interop_mark(int mark) {
    if (interop_nmarks < 64)
        interop_marks[interop_nmarks++] = mark;
}

static void mark_cb(void *arg) {
    interop_mark((int)(intptr_t)arg);
}

int interop_call_soon_mark(aios_loop_t *loop, int mark) {
    return aios_loop_call_soon(loop, mark_cb, (void *)(intptr_t)mark, NULL, NULL);
}
"""


def _library_dir():
    """The directory of the libaio-swift aioswift loaded (one runtime)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            for line in f:
                path = line.split()[-1]
                if os.path.basename(path).startswith("libaio-swift.so"):
                    return os.path.dirname(path)
    except OSError:
        pass
    return os.path.join(REPO, "build", "lib")


@pytest.fixture(scope="module")
def cmod(tmp_path_factory):
    """The C side: ffi and lib of a cffi module built now into a tmp dir."""
    cffi = pytest.importorskip("cffi")
    tmp = tmp_path_factory.mktemp("interop")
    include_dir = os.path.dirname(header_path())
    lib_dir = _library_dir()
    builder = cffi.FFI()
    builder.cdef(C_CDEF)
    name = "_aioswift_interop_c"
    builder.set_source(name, C_SOURCE, include_dirs=[include_dir], library_dirs=[lib_dir],
                       libraries=["aio-swift"], extra_compile_args=["-Wall"],
                       extra_link_args=[f"-Wl,-rpath,{lib_dir}"])
    path = builder.compile(tmpdir=str(tmp))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Probes stay alive for the whole module: a task's argument destructor writes
# into its probe whenever the task is freed.
_probes = []


def new_probe(cmod):
    probe = cmod.ffi.new("probe_t *")
    _probes.append(probe)
    return probe


def message(cmod, probe):
    return cmod.ffi.string(probe.message).decode()


def c_long(value):
    """A long a C task or future returned (a `void *` to it)."""
    return ffi.cast("long *", value)[0]


def sleeper(cmod, loop, probe, delay=0.001, value=42, fail_code=0):
    """A C task (CFuture) from interop_sleeper; the test's reference is the
    CFuture's alone."""
    out = cmod.ffi.new("aios_task_t **")
    assert cmod.lib.interop_sleeper(cmod.ffi.cast("aios_loop_t *", loop.aios_loop), delay,
                                    value, fail_code, probe, out) == 0
    task = loop.wrap_cfuture(out[0])
    assert lib.aios_task_unref(ffi.cast("aios_task_t *", out[0])) == 0
    return task


def relay(cmod, loop, awaited, probe):
    """A C task awaiting the CFuture `awaited`, as a CFuture."""
    out = cmod.ffi.new("aios_task_t **")
    assert cmod.lib.interop_relay(cmod.ffi.cast("aios_future_t *", awaited.pointer),
                                  probe, out) == 0
    task = loop.wrap_cfuture(out[0])
    lib.aios_task_unref(ffi.cast("aios_task_t *", out[0]))
    return task


class Value:
    pass


# -- Python awaits C -----------------------------------------------------------

def test_a_python_coroutine_awaits_a_c_task_and_gets_its_result(aloop, cmod):
    probe = new_probe(cmod)
    freed = cmod.lib.interop_values_freed
    task = sleeper(cmod, aloop, probe, value=4242)
    assert asyncio.isfuture(task) and not task.done()

    async def main():
        result = await task
        return c_long(result), asyncio.current_task() is not None

    assert aloop.run_until_complete(main()) == (4242, True)
    assert probe.steps == 2 and probe.outcome == 1 and probe.status == 0
    assert task.done() and not task.cancelled()
    assert cmod.lib.interop_values_freed == freed         # the task still owns it
    del task
    gc.collect()
    assert cmod.lib.interop_values_freed == freed + 1     # released exactly once
    assert probe.released == 1


def test_a_python_coroutine_awaits_a_future_made_by_c(aloop, cmod):
    freed = cmod.lib.interop_values_freed
    out = cmod.ffi.new("aios_future_t **")
    started = aloop.time()          # before the C timer is armed: it is never early
    assert cmod.lib.interop_sleep_future(cmod.ffi.cast("aios_loop_t *", aloop.aios_loop),
                                         0.01, 7, out) == 0
    future = aloop.wrap_cfuture(int(cmod.ffi.cast("uintptr_t", out[0])))   # an address works
    assert lib.aios_future_unref(ffi.cast("aios_future_t *", out[0])) == 0

    async def main():
        value = await future
        return c_long(value), aloop.time() - started

    value, took = aloop.run_until_complete(main())
    assert value == 7 and took >= 0.01 - 0.002
    assert cmod.lib.interop_values_freed == freed
    del future
    gc.collect()
    assert cmod.lib.interop_values_freed == freed + 1


def test_a_failing_c_task_raises_its_error_in_python(aloop, cmod):
    probe = new_probe(cmod)
    task = sleeper(cmod, aloop, probe, fail_code=-errno.ECONNRESET)

    async def main():
        with pytest.raises(ConnectionResetError) as info:
            await task
        return info.value.errno

    assert aloop.run_until_complete(main()) == errno.ECONNRESET
    assert probe.outcome == 2
    del task


def test_cancelling_a_python_task_cancels_the_c_task_it_awaits(aloop, cmod):
    probe = new_probe(cmod)
    ctask = sleeper(cmod, aloop, probe, delay=10)
    seen = []

    async def waiter():
        try:
            await ctask
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            raise

    pytask = aloop.create_task(waiter())
    aloop.run_until_complete(asyncio.sleep(0.01))
    assert probe.steps == 1 and not ctask.done()
    assert pytask.cancel("stop") is True
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        aloop.run_until_complete(pytask)
    assert time.monotonic() - started < 1.0               # not the 10 s sleep
    assert pytask.cancelled()
    assert seen == [("stop",)]                            # the message went through C
    assert ctask.cancelled()
    assert probe.outcome == 3 and probe.steps == 2
    assert message(cmod, probe) == "stop"
    del ctask, pytask


def test_wait_for_a_c_task_times_out_and_cancels_it(aloop, cmod):
    probe = new_probe(cmod)
    ctask = sleeper(cmod, aloop, probe, delay=10)

    async def main():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ctask, 0.01)

    aloop.run_until_complete(main())
    assert ctask.cancelled() and probe.outcome == 3
    del ctask


def test_gather_takes_c_tasks_and_python_coroutines(aloop, cmod):
    first, second = new_probe(cmod), new_probe(cmod)

    async def py():
        await asyncio.sleep(0)
        return "py"

    async def main():
        results = await asyncio.gather(sleeper(cmod, aloop, first, value=1), py(),
                                       sleeper(cmod, aloop, second, value=2))
        return [c_long(results[0]), results[1], c_long(results[2])]

    assert aloop.run_until_complete(main()) == [1, "py", 2]
    gc.collect()
    assert first.released == second.released == 1


# -- C awaits Python -----------------------------------------------------------

def test_a_c_task_awaits_a_python_future_set_later(aloop, cmod):
    probe = new_probe(cmod)
    value = Value()
    refs = sys.getrefcount(value)
    pyfut = aloop.create_future()
    ctask = relay(cmod, aloop, aloop.as_cfuture(pyfut), probe)
    aloop.call_later(0.01, pyfut.set_result, value)

    async def main():
        return await ctask

    assert aloop.run_until_complete(main()) is value     # the same object, through C
    assert probe.outcome == 1 and probe.steps == 2
    assert ctask.result() is value
    del ctask, pyfut
    gc.collect()
    assert probe.released == 1
    assert sys.getrefcount(value) == refs                 # every reference given back


def test_a_c_task_awaits_a_python_future_set_with_an_exception(aloop, cmod):
    probe = new_probe(cmod)
    error = KeyError("from python")
    refs = sys.getrefcount(error)
    pyfut = aloop.create_future()
    ctask = relay(cmod, aloop, aloop.as_cfuture(pyfut), probe)
    aloop.call_soon(pyfut.set_exception, error)

    async def main():
        try:
            await ctask
        except KeyError as exc:
            return exc

    assert aloop.run_until_complete(main()) is error     # the same object, through C
    assert probe.outcome == 2 and message(cmod, probe) == "KeyError: 'from python'"
    assert ctask.exception() is error
    del ctask, pyfut
    gc.collect()
    error.__traceback__ = None                            # what `raise` added here
    assert sys.getrefcount(error) == refs


def test_a_c_task_awaits_a_cancelled_python_future(aloop, cmod):
    probe = new_probe(cmod)
    pyfut = aloop.create_future()
    ctask = relay(cmod, aloop, aloop.as_cfuture(pyfut), probe)
    aloop.call_soon(pyfut.cancel, "python said no")

    async def main():
        with pytest.raises(asyncio.CancelledError) as info:
            await ctask
        return info.value.args

    assert aloop.run_until_complete(main()) == ("python said no",)
    assert ctask.cancelled() and probe.outcome == 3
    assert message(cmod, probe) == "python said no"
    del ctask


def test_a_c_task_awaits_python_tasks(aloop, cmod):
    result, error = Value(), ValueError("coroutine failed")

    async def ok():
        await asyncio.sleep(0.001)
        return result

    async def bad():
        await asyncio.sleep(0)
        raise error

    good_probe, bad_probe = new_probe(cmod), new_probe(cmod)
    good = relay(cmod, aloop, aloop.as_cfuture(ok()), good_probe)
    failed = relay(cmod, aloop, aloop.as_cfuture(aloop.create_task(bad())), bad_probe)
    assert aloop.run_until_complete(good) is result
    with pytest.raises(ValueError) as info:
        aloop.run_until_complete(failed)
    assert info.value is error
    assert good_probe.outcome == 1 and bad_probe.outcome == 2
    del good, failed, info


def test_cancelling_a_c_task_cancels_the_python_future_it_awaits(aloop, cmod):
    probe = new_probe(cmod)
    pyfut = aloop.create_future()
    ctask = relay(cmod, aloop, aloop.as_cfuture(pyfut), probe)
    aloop.run_until_complete(asyncio.sleep(0.001))
    assert probe.steps == 1 and not pyfut.done()
    assert ctask.cancel("halt") is True                   # aios_task_cancel
    with pytest.raises(asyncio.CancelledError):
        aloop.run_until_complete(ctask)
    aloop.run_until_complete(asyncio.sleep(0))            # the future's done callback
    assert pyfut.cancelled()
    with pytest.raises(asyncio.CancelledError) as info:
        pyfut.result()
    assert info.value.args == ("halt",)
    assert ctask.cancelled() and probe.outcome == 3 and message(cmod, probe) == "halt"
    del ctask, info


def test_cancelling_a_c_task_cancels_the_python_task_it_awaits(aloop, cmod):
    probe = new_probe(cmod)
    seen = []

    async def body():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            raise

    pytask = aloop.create_task(body())
    ctask = relay(cmod, aloop, aloop.as_cfuture(pytask), probe)
    aloop.run_until_complete(asyncio.sleep(0.001))
    ctask.cancel("from c")
    with pytest.raises(asyncio.CancelledError):
        aloop.run_until_complete(ctask)
    aloop.run_until_complete(asyncio.sleep(0))
    assert pytask.cancelled() and seen == [("from c",)]
    del ctask, pytask


def test_a_future_already_done_is_carried_over_at_once(aloop, cmod):
    value = Value()
    pyfut = aloop.create_future()
    pyfut.set_result(value)
    follower = aloop.as_cfuture(pyfut)
    assert follower.done() and follower.result() is value
    assert aloop.as_cfuture(follower) is follower
    probe = new_probe(cmod)
    assert aloop.run_until_complete(relay(cmod, aloop, follower, probe)) is value


def test_a_follower_lets_go_of_the_python_value_exactly_once(aloop, cmod):
    value = Value()
    ref = weakref.ref(value)
    pyfut = aloop.create_future()
    follower = aloop.as_cfuture(pyfut)
    pyfut.set_result(value)
    del value
    aloop.run_until_complete(asyncio.sleep(0))
    assert follower.result() is ref()
    del pyfut
    gc.collect()
    assert ref() is not None                              # the C future holds it
    del follower
    gc.collect()
    assert ref() is None                                  # and let it go


# -- one ready queue -------------------------------------------------------------

def test_c_and_python_callbacks_run_in_the_order_they_were_scheduled(aloop, cmod):
    cmod.lib.interop_nmarks = 0
    loop_ptr = cmod.ffi.cast("aios_loop_t *", aloop.aios_loop)
    expected = []
    for i in range(1, 9):
        if i % 3:
            assert cmod.lib.interop_call_soon_mark(loop_ptr, i) == 0     # aios_loop_call_soon
        else:
            aloop.call_soon(cmod.lib.interop_mark, i)                    # loop.call_soon
        expected.append(i)
    aloop.call_soon(lambda: cmod.lib.interop_mark(100))
    assert cmod.lib.interop_call_soon_mark(loop_ptr, 101) == 0
    expected += [100, 101]
    aloop.call_soon(aloop.stop)
    aloop.run_forever()
    assert list(cmod.lib.interop_marks[0:cmod.lib.interop_nmarks]) == expected


def test_c_and_python_callbacks_keep_their_order_from_inside_a_callback(aloop, cmod):
    cmod.lib.interop_nmarks = 0
    loop_ptr = cmod.ffi.cast("aios_loop_t *", aloop.aios_loop)

    def schedule():
        cmod.lib.interop_call_soon_mark(loop_ptr, 1)
        aloop.call_soon(cmod.lib.interop_mark, 2)
        cmod.lib.interop_call_soon_mark(loop_ptr, 3)
        aloop.call_soon(aloop.stop)

    aloop.call_soon(schedule)
    aloop.run_forever()
    assert list(cmod.lib.interop_marks[0:cmod.lib.interop_nmarks]) == [1, 2, 3]


def test_another_threads_call_keeps_its_place_before_c_and_python_calls(aloop, cmod):
    # As in asyncio's one ready queue: a call_soon_threadsafe made (and
    # finished) on another thread comes before the C and Python calls the
    # loop's thread makes after it.
    cmod.lib.interop_nmarks = 0
    loop_ptr = cmod.ffi.cast("aios_loop_t *", aloop.aios_loop)

    def schedule():
        other = threading.Thread(
            target=lambda: aloop.call_soon_threadsafe(cmod.lib.interop_mark, 1))
        other.start()
        other.join()
        cmod.lib.interop_call_soon_mark(loop_ptr, 2)
        aloop.call_soon(cmod.lib.interop_mark, 3)
        aloop.call_soon(aloop.stop)

    aloop.call_soon(schedule)
    aloop.run_forever()
    assert list(cmod.lib.interop_marks[0:cmod.lib.interop_nmarks]) == [1, 2, 3]


def test_a_c_task_is_a_ctask_with_the_task_methods(aloop, cmod):
    # A C task handed to Python has asyncio.Task's cancelling, uncancel and
    # names; a plain C future stays a CFuture. The task also counts its
    # cancellation requests as asyncio's does; uncancel takes a request back
    # but not the cancellation already delivered to what the task awaits.
    probe = new_probe(cmod)
    task = sleeper(cmod, aloop, probe, delay=0.05, value=5)
    assert isinstance(task, aioswift.CTask) and asyncio.isfuture(task)
    assert not isinstance(aloop.create_cfuture(), aioswift.CTask)
    assert task.get_name() == "c-sleeper"
    task.set_name("renamed")
    assert task.get_name() == "renamed"
    assert "renamed" in repr(task) and "pending" in repr(task)
    assert task.get_coro() is None and task.get_stack() == []
    aloop.run_until_complete(asyncio.sleep(0))          # its first step: it sleeps
    assert task.cancelling() == 0
    assert task.cancel("once") is True
    assert task.cancel("twice") is True
    assert task.cancelling() == 2
    assert task.uncancel() == 1
    assert task.uncancel() == 0
    assert task.cancelling() == 0
    with pytest.raises(asyncio.CancelledError):
        aloop.run_until_complete(task)
    assert task.cancelled() and probe.outcome == 3
    # Through the address, it is a CTask too; a done task keeps its name.
    again = aloop.wrap_cfuture(int(ffi.cast("uintptr_t", task.pointer)))
    assert isinstance(again, aioswift.CTask) and again.get_name() == "renamed"
    del task, again


# -- what is refused -------------------------------------------------------------

def test_wrap_cfuture_refuses_what_is_not_a_future_of_this_loop(aloop, cmod):
    with pytest.raises(TypeError):
        aloop.wrap_cfuture("not a pointer")
    with pytest.raises(ValueError):
        aloop.wrap_cfuture(ffi.NULL)
    stale = aloop.create_cfuture()
    address = int(ffi.cast("uintptr_t", stale.pointer))
    del stale
    gc.collect()
    with pytest.raises(aioswift.AioswiftError) as info:
        aloop.wrap_cfuture(address)                        # freed: a stale handle
    assert info.value.code == lib.AIOS_EBADHANDLE
    other = aioswift.new_event_loop()
    try:
        foreign = other.create_cfuture()
        with pytest.raises(aioswift.WrongLoopError):
            aloop.wrap_cfuture(foreign.pointer)
        pyfut = other.create_future()
        with pytest.raises(ValueError):
            aloop.as_cfuture(pyfut)
        with pytest.raises(ValueError):
            aloop.as_cfuture(foreign)
        del foreign, pyfut
    finally:
        other.close()


def test_an_exception_through_c_and_back_is_freed_with_its_traceback(aloop, cmod):
    # The exception's traceback holds the frames that awaited the C task,
    # and so the CFuture of the task, which holds the exception through C:
    # a cycle the collector must still see.
    probe = new_probe(cmod)

    class CycleError(ValueError):
        pass

    async def bad():
        raise CycleError("cycle")

    ctask = relay(cmod, aloop, aloop.as_cfuture(bad()), probe)

    async def main():
        try:
            await ctask
        except ValueError as exc:
            return weakref.ref(exc)

    ref = aloop.run_until_complete(main())
    assert ref() is not None and probe.outcome == 2
    del ctask
    gc.collect()
    assert ref() is None
    assert probe.released == 1


def test_a_c_task_left_waiting_for_a_python_future_at_close_leaks_nothing(cmod, leakcheck):
    loop = aioswift.new_event_loop()
    probe = new_probe(cmod)
    pyfut = loop.create_future()
    ref = weakref.ref(pyfut)
    ctask = relay(cmod, loop, loop.as_cfuture(pyfut), probe)
    loop.run_until_complete(asyncio.sleep(0.001))
    assert probe.steps == 1 and not ctask.done()
    loop.close()
    del ctask, pyfut
    gc.collect()
    assert ref() is None
    assert probe.released == 1
