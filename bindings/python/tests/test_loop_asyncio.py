"""asyncio programs that must run the same on asyncio's loop and aioswift's:
each test runs on both (the `any_loop` fixture). asyncio's own Task and
Future run on the loop."""

import asyncio
import concurrent.futures
import contextvars
import gc
import sys
import threading
import time
import warnings

import pytest

PY312 = sys.version_info >= (3, 12)


def test_run_until_complete_of_a_coroutine_a_task_and_a_future(any_loop):
    loop = any_loop

    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    assert loop.run_until_complete(double(21)) == 42
    task = loop.create_task(double(1))
    assert loop.run_until_complete(task) == 2
    future = loop.create_future()
    loop.call_later(0.01, future.set_result, "later")
    assert loop.run_until_complete(future) == "later"
    assert isinstance(future, asyncio.Future)
    assert asyncio.isfuture(future)


def test_run_until_complete_raises_what_the_coroutine_raised(any_loop):
    async def fail():
        await asyncio.sleep(0)
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        any_loop.run_until_complete(fail())


def test_run_until_complete_stopped_early_raises_runtime_error(any_loop):
    loop = any_loop

    async def forever():
        await asyncio.sleep(3600)

    task = loop.create_task(forever())
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


def test_running_a_running_loop_and_nesting_are_refused(any_loop):
    loop = any_loop

    async def inside():
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="This event loop is already running"):
            loop.run_until_complete(coro)
        coro.close()
        if sys.version_info < (3, 13) or not isinstance(loop, asyncio.BaseEventLoop):
            # (3.13's own loop breaks itself here: the refused run_forever
            # cleans up as if it had run, and the loop stops working.)
            with pytest.raises(RuntimeError, match="This event loop is already running"):
                loop.run_forever()
        with pytest.raises(RuntimeError, match="Cannot close a running event loop"):
            loop.close()
        assert asyncio.get_running_loop() is loop
        return "ok"

    assert loop.run_until_complete(inside()) == "ok"
    assert not loop.is_running()


def test_a_closed_loop_refuses_work_and_closes_twice(any_loop):
    loop = any_loop
    loop.close()
    loop.close()
    assert loop.is_closed()
    for call in (lambda: loop.call_soon(print), lambda: loop.call_later(1, print),
                 lambda: loop.call_at(1, print), lambda: loop.call_soon_threadsafe(print),
                 loop.run_forever, lambda: loop.run_in_executor(None, print)):
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            call()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.create_task(coro)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_until_complete(coro)
    coro.close()


def test_asyncio_building_blocks(any_loop):
    async def main():
        started = time.monotonic()
        await asyncio.sleep(0.02)
        assert time.monotonic() - started >= 0.02 - 0.002
        async with asyncio.TaskGroup() as group:
            a = group.create_task(asyncio.sleep(0.01, "a"))
            b = group.create_task(asyncio.sleep(0, "b"))
        assert (a.result(), b.result()) == ("a", "b")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.01)
        assert await asyncio.wait_for(asyncio.sleep(0, "in time"), 1) == "in time"
        assert await asyncio.to_thread(threading.get_ident) != threading.get_ident()
        lock = asyncio.Lock()
        order = []

        async def locked(n):
            async with lock:
                order.append(n)
                await asyncio.sleep(0)

        await asyncio.gather(*(locked(n) for n in range(5)))
        assert order == list(range(5))
        queue = asyncio.Queue(maxsize=2)

        async def produce():
            for i in range(10):
                await queue.put(i)
            await queue.put(None)

        async def consume():
            got = []
            while (item := await queue.get()) is not None:
                got.append(item)
            return got

        _, got = await asyncio.gather(produce(), consume())
        assert got == list(range(10))
        event = asyncio.Event()
        any_loop.call_later(0.005, event.set)
        await event.wait()
        done, pending = await asyncio.wait([asyncio.ensure_future(asyncio.sleep(0.001)),
                                            asyncio.ensure_future(asyncio.sleep(5))],
                                           return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1 and len(pending) == 1
        for task in pending:
            task.cancel()
        results = [await f for f in asyncio.as_completed([asyncio.sleep(0.002, 2),
                                                          asyncio.sleep(0.001, 1)])]
        assert results == [1, 2]
        shielded = asyncio.ensure_future(asyncio.sleep(0.001, "shielded"))
        assert await asyncio.shield(shielded) == "shielded"
        return "done"

    assert any_loop.run_until_complete(main()) == "done"


def test_cancellation_and_uncancel(any_loop):
    async def child():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()
            return "caught"

    async def main():
        task = asyncio.ensure_future(child())
        await asyncio.sleep(0)
        task.cancel("stop it")
        assert task.cancelling() == 1
        assert await task == "caught"
        other = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        other.cancel("with a message")
        with pytest.raises(asyncio.CancelledError, match="with a message"):
            await other
        return "ok"

    assert any_loop.run_until_complete(main()) == "ok"


def test_create_task_names_and_contexts(any_loop):
    var = contextvars.ContextVar("var", default="default")

    async def read():
        return var.get()

    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")

    async def main():
        task = any_loop.create_task(read(), name="reader")
        assert task.get_name() == "reader"
        assert await task == "default"
        assert await any_loop.create_task(read(), context=ctx) == "in ctx"

    any_loop.run_until_complete(main())


def test_futures_and_tasks_are_the_classes_asyncio_names_now(any_loop, monkeypatch):
    # The stock loop reads futures.Future and tasks.Task at each call, so a
    # patched module is honoured.
    class MyFuture(asyncio.Future):
        pass

    class MyTask(asyncio.Task):
        pass

    async def main():
        assert type(any_loop.create_future()) is asyncio.Future
        monkeypatch.setattr(asyncio.futures, "Future", MyFuture)
        monkeypatch.setattr(asyncio.tasks, "Task", MyTask)
        assert type(any_loop.create_future()) is MyFuture
        task = any_loop.create_task(asyncio.sleep(0, "slept"))
        assert type(task) is MyTask
        assert await task == "slept"
        monkeypatch.undo()
        assert type(any_loop.create_future()) is asyncio.Future

    any_loop.run_until_complete(main())


def test_task_factories(any_loop):
    made = []

    def factory(loop, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    assert any_loop.get_task_factory() is None
    any_loop.set_task_factory(factory)
    assert any_loop.get_task_factory() is factory

    async def main():
        return await asyncio.ensure_future(asyncio.sleep(0, "x"))

    assert any_loop.run_until_complete(main()) == "x"
    assert len(made) == 2
    task = any_loop.create_task(asyncio.sleep(0), name="named")
    assert task.get_name() == "named"
    any_loop.run_until_complete(task)
    with pytest.raises(TypeError):
        any_loop.set_task_factory(42)
    any_loop.set_task_factory(None)
    assert any_loop.get_task_factory() is None


@pytest.mark.skipif(not PY312, reason="eager tasks are 3.12+")
def test_the_eager_task_factory(any_loop):
    steps = []

    async def child():
        steps.append("child started")
        await asyncio.sleep(0)
        steps.append("child resumed")
        return "child"

    async def main():
        task = asyncio.create_task(child())
        steps.append("created")       # an eager task ran up to its first await
        return await task

    any_loop.set_task_factory(asyncio.eager_task_factory)
    assert any_loop.run_until_complete(main()) == "child"
    assert steps == ["child started", "created", "child resumed"]

    async def immediate():
        return "at once"

    async def main2():
        task = asyncio.create_task(immediate())
        assert task.done()
        return task.result()

    assert any_loop.run_until_complete(main2()) == "at once"


def test_a_task_exception_never_retrieved_is_reported(any_loop):
    reports = []
    any_loop.set_exception_handler(lambda loop, context: reports.append(context))

    async def fail():
        raise ValueError("lost")

    async def main():
        asyncio.ensure_future(fail())
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    any_loop.run_until_complete(main())
    gc.collect()
    assert len(reports) == 1
    assert reports[0]["message"] == "Task exception was never retrieved"
    assert isinstance(reports[0]["exception"], ValueError)


def test_a_keyboard_interrupt_in_a_coroutine_propagates_and_the_loop_goes_on(any_loop):
    async def interrupted():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        any_loop.run_until_complete(interrupted())
    assert any_loop.run_until_complete(asyncio.sleep(0, "after")) == "after"


def test_async_generators_are_finalized_and_shut_down(any_loop):
    closed = []

    async def agen(name):
        try:
            yield 1
            yield 2
        finally:
            closed.append(name)

    async def main():
        left_open = agen("left open")
        assert await left_open.__anext__() == 1
        dropped = agen("dropped")
        await dropped.__anext__()
        del dropped
        gc.collect()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return left_open

    kept = any_loop.run_until_complete(main())
    assert closed == ["dropped"]         # the finalizer hook closed it
    any_loop.run_until_complete(any_loop.shutdown_asyncgens())
    assert closed == ["dropped", "left open"]
    del kept

    async def late():
        gen = agen("late")
        await gen.__anext__()
        await gen.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        any_loop.run_until_complete(late())
    assert any("was scheduled after loop.shutdown_asyncgens()" in str(w.message)
               for w in caught)


def test_run_in_executor_and_the_default_executor(any_loop):
    loop = any_loop

    async def main():
        main_thread = threading.get_ident()
        ident = await loop.run_in_executor(None, threading.get_ident)
        assert ident != main_thread
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            assert await loop.run_in_executor(pool, sum, [1, 2, 3]) == 6
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(None, lambda: 1 / 0)

    loop.run_until_complete(main())
    with pytest.raises(TypeError):
        loop.set_default_executor(object())
    pool = concurrent.futures.ThreadPoolExecutor(2)
    loop.set_default_executor(pool)
    assert loop.run_until_complete(loop.run_in_executor(None, abs, -3)) == 3
    loop.run_until_complete(loop.shutdown_default_executor())
    assert pool._shutdown
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, abs, 1)


def test_asyncgen_and_executor_shutdown_with_nothing_to_do(any_loop):
    any_loop.run_until_complete(any_loop.shutdown_asyncgens())
    any_loop.run_until_complete(any_loop.shutdown_default_executor())


def test_run_coroutine_threadsafe_from_another_thread(any_loop):
    loop = any_loop
    results = []

    async def work(x):
        await asyncio.sleep(0.001)
        return x * 3

    def worker():
        future = asyncio.run_coroutine_threadsafe(work(5), loop)
        results.append(future.result(timeout=5))
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=worker)
    thread.start()
    loop.run_forever()
    thread.join()
    assert results == [15]


def test_wrap_future_of_a_thread_pool(any_loop):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cf = pool.submit(time.sleep, 0.01)

        async def main():
            return await asyncio.wrap_future(cf)

        assert any_loop.run_until_complete(main()) is None


@pytest.mark.strands_core_loop
def test_a_loop_made_on_one_thread_runs_on_another(any_loop):
    loop = any_loop
    calls = []
    loop.call_soon(calls.append, "scheduled before the thread ran it")
    loop.call_later(0.005, calls.append, "timer scheduled before")
    early = loop.call_later(0.001, calls.append, "cancelled")
    early.cancel()

    async def where():
        await asyncio.sleep(0.01)
        return threading.current_thread().name

    thread = threading.Thread(target=loop.run_forever, name="runner")
    thread.start()
    try:
        assert asyncio.run_coroutine_threadsafe(where(), loop).result(5) == "runner"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert calls == ["scheduled before the thread ran it", "timer scheduled before"]
    # and back on this thread
    assert loop.run_until_complete(where()) == threading.current_thread().name


@pytest.mark.strands_core_loop
def test_run_until_complete_on_another_thread_with_a_task_made_here(any_loop):
    loop = any_loop
    task = loop.create_task(asyncio.sleep(0.001, "done"))
    results = []
    thread = threading.Thread(target=lambda: results.append(loop.run_until_complete(task)))
    thread.start()
    thread.join(5)
    assert results == ["done"]
