"""How asyncio programs get aioswift's loop, and what it does not do yet."""

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import aioswift

PY312 = sys.version_info >= (3, 12)
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def which_loop():
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_new_event_loop_is_an_asyncio_event_loop():
    loop = aioswift.new_event_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert isinstance(loop, aioswift.Loop)
        assert not loop.is_running() and not loop.is_closed()
        loop.set_debug(False)
        assert repr(loop) == "<Loop running=False closed=False debug=False>"
    finally:
        loop.close()


def test_aioswift_run():
    assert aioswift.run(which_loop()) is aioswift.Loop

    async def debug():
        return asyncio.get_running_loop().get_debug()

    assert aioswift.run(debug(), debug=True) is True


def test_asyncio_runner_with_the_loop_factory():
    with asyncio.Runner(loop_factory=aioswift.new_event_loop) as runner:
        assert runner.run(which_loop()) is aioswift.Loop
        loop = runner.get_loop()
        assert runner.run(which_loop()) is aioswift.Loop
        assert runner.get_loop() is loop
    assert loop.is_closed()


@pytest.mark.skipif(not PY312, reason="asyncio.run takes loop_factory from 3.12")
def test_asyncio_run_with_the_loop_factory():
    assert asyncio.run(which_loop(), loop_factory=aioswift.new_event_loop) is aioswift.Loop


def test_the_policy_and_install():
    old = asyncio.get_event_loop_policy()
    try:
        asyncio.set_event_loop_policy(aioswift.EventLoopPolicy())
        loop = asyncio.new_event_loop()
        assert isinstance(loop, aioswift.Loop)
        loop.close()
        asyncio.set_event_loop_policy(None)
        aioswift.install()
        assert isinstance(asyncio.get_event_loop_policy(), aioswift.EventLoopPolicy)
        assert asyncio.run(which_loop()) is aioswift.Loop
    finally:
        asyncio.set_event_loop_policy(old)


def test_the_runner_cancels_what_is_left_and_shuts_down():
    # asyncio.run's epilogue: remaining tasks cancelled, async generators
    # closed, the executor shut down, the loop closed.
    seen = []

    async def agen():
        try:
            yield 1
        finally:
            seen.append("agen closed")

    async def forever():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main():
        asyncio.ensure_future(forever())
        gen = agen()
        await gen.__anext__()
        await asyncio.to_thread(seen.append, "in a thread")
        await asyncio.sleep(0)
        main.gen = gen
        return asyncio.get_running_loop()

    loop = aioswift.run(main())
    assert loop.is_closed()
    assert seen == ["in a thread", "cancelled", "agen closed"]


def test_the_whole_abstract_event_loop_is_built():
    """Every method of asyncio.AbstractEventLoop is the loop's own (none is
    the abstract one that raises NotImplementedError), and the coroutine
    methods stay coroutine functions (asyncio code awaits them)."""
    from aioswift._loop import Loop as loop_class
    for name, abstract in vars(asyncio.AbstractEventLoop).items():
        if name.startswith("_") or not callable(abstract):
            continue
        method = getattr(loop_class, name)
        assert method is not abstract, name
        if inspect.iscoroutinefunction(abstract):
            assert inspect.iscoroutinefunction(method), name


SIGINT_CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys, threading, time
    sys.path.insert(0, {root!r})
    import aioswift

    def interrupt_soon():
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_soon, daemon=True).start()
    started = time.monotonic()
    try:
        if sys.argv[1] == "run":
            aioswift.run(asyncio.sleep(30))
        else:
            loop = aioswift.new_event_loop()
            loop.call_later(30, loop.stop)
            try:
                loop.run_forever()
            finally:
                # the loop is usable after the interrupt
                loop.call_soon(loop.stop)
                loop.run_forever()
                loop.close()
    except KeyboardInterrupt:
        print("KeyboardInterrupt", round(time.monotonic() - started, 1))
""")


@pytest.mark.parametrize("how", ["run", "run_forever"])
def test_ctrl_c_interrupts_a_loop_that_waits(how):
    # The loop blocks in the core's poll; SIGINT must still reach Python's
    # handler at once (KeyboardInterrupt, or asyncio.Runner's cancellation).
    code = SIGINT_CHILD.format(root=PACKAGE_ROOT)
    proc = subprocess.run([sys.executable, "-c", code, how], capture_output=True,
                          text=True, timeout=20)
    assert proc.stdout.startswith("KeyboardInterrupt"), proc.stderr
    assert float(proc.stdout.split()[1]) < 5.0


def test_a_signal_handler_of_ours_runs_while_the_loop_waits():
    code = textwrap.dedent(f"""
        import os, signal, sys, threading, time
        sys.path.insert(0, {PACKAGE_ROOT!r})
        import aioswift
        loop = aioswift.new_event_loop()
        got = []
        def handler(signum, frame):
            got.append(signum)
            loop.stop()
        signal.signal(signal.SIGUSR1, handler)
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        loop.call_later(30, loop.stop)
        started = time.monotonic()
        loop.run_forever()
        print(got == [signal.SIGUSR1], round(time.monotonic() - started, 1))
        loop.close()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=20)
    ok, seconds = proc.stdout.split()
    assert ok == "True", proc.stderr
    assert float(seconds) < 5.0
