"""Signal handlers: add_signal_handler and remove_signal_handler with real
signals (os.kill of this process), each body run on the stock loop and on
aioswift's (`any_loop`). pytest runs tests on the main thread, the only one
signal handlers may be added from."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import aioswift

TIMEOUT = 4.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(loop, coro, timeout=TIMEOUT):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


@pytest.fixture(autouse=True)
def python_handlers_back():
    """Each test leaves Python's handlers as it found them."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2,
                                                     signal.SIGINT, signal.SIGALRM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


async def until(predicate):
    while not predicate():
        await asyncio.sleep(0.005)


def test_a_handler_runs_on_the_loop_with_its_arguments(any_loop):
    loop = any_loop
    calls = []

    def handler(*args):
        calls.append((args, threading.current_thread() is threading.main_thread()))

    async def main():
        loop.add_signal_handler(signal.SIGUSR1, handler, "a", 2)
        assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        os.kill(os.getpid(), signal.SIGUSR1)
        await until(lambda: calls)
        os.kill(os.getpid(), signal.SIGUSR1)
        await until(lambda: len(calls) == 2)

    run(loop, main())
    assert calls == [(("a", 2), True)] * 2
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_a_signal_while_the_loop_waits(any_loop):
    loop = any_loop
    caught = []

    def handler():
        caught.append(1)
        loop.stop()

    loop.add_signal_handler(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    loop.call_later(TIMEOUT, loop.stop)
    loop.run_forever()
    assert caught == [1]
    assert loop.remove_signal_handler(signal.SIGALRM)


def test_adding_again_replaces_the_handler(any_loop):
    loop = any_loop
    calls = []

    async def main():
        loop.add_signal_handler(signal.SIGUSR2, calls.append, "first")
        loop.add_signal_handler(signal.SIGUSR2, calls.append, "second")
        os.kill(os.getpid(), signal.SIGUSR2)
        await until(lambda: calls)
        for _ in range(3):
            await asyncio.sleep(0)

    run(loop, main())
    assert calls == ["second"]
    assert loop.remove_signal_handler(signal.SIGUSR2)


def test_sigint_handler_then_keyboard_interrupt_again(any_loop):
    loop = any_loop
    calls = []

    async def main():
        loop.add_signal_handler(signal.SIGINT, calls.append, "int")
        os.kill(os.getpid(), signal.SIGINT)
        await until(lambda: calls)

    run(loop, main())
    assert calls == ["int"]
    assert loop.remove_signal_handler(signal.SIGINT)
    # Removing puts Python's handler back: Ctrl-C is KeyboardInterrupt again.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    async def interrupted():
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(TIMEOUT)

    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(interrupted())


def test_a_handler_that_raises_is_reported(any_loop):
    loop = any_loop
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    def handler():
        raise ZeroDivisionError("in the handler")

    async def main():
        loop.add_signal_handler(signal.SIGUSR1, handler)
        os.kill(os.getpid(), signal.SIGUSR1)
        await until(lambda: errors)

    run(loop, main())
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert loop.remove_signal_handler(signal.SIGUSR1)


def test_what_asyncio_refuses(any_loop):
    loop = any_loop

    async def coroutine():
        pass

    with pytest.raises(TypeError):
        loop.add_signal_handler("boom", print)
    with pytest.raises(TypeError):
        loop.remove_signal_handler("boom")
    for bad in (0, -1, signal.NSIG + 1):
        with pytest.raises(ValueError):
            loop.add_signal_handler(bad, print)
        with pytest.raises(ValueError):
            loop.remove_signal_handler(bad)
    for sig in (signal.SIGKILL, signal.SIGSTOP):
        with pytest.raises(RuntimeError, match=f"sig {sig} cannot be caught"):
            loop.add_signal_handler(sig, print)
        assert loop.remove_signal_handler(sig) is False
    with pytest.raises(TypeError, match="coroutines cannot be used with add_signal_handler"):
        loop.add_signal_handler(signal.SIGUSR1, coroutine)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_only_the_main_thread_adds_handlers(any_loop):
    loop = any_loop
    raised = []

    def other_thread():
        try:
            loop.add_signal_handler(signal.SIGUSR1, print)
        except RuntimeError as exc:
            raised.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert len(raised) == 1
    assert "main thread" in str(raised[0])


def test_a_closed_loop_refuses_handlers_and_closing_takes_them_away(any_loop):
    loop = any_loop
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.add_signal_handler(signal.SIGINT, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    with pytest.raises(RuntimeError, match="closed"):
        loop.add_signal_handler(signal.SIGUSR1, print)


def test_sigpipe_stays_ignored_after_its_handler_goes(aloop):
    # The core's writes rely on SIGPIPE ignored, as Python starts with it
    # (asyncio's remove sets SIG_DFL).
    aloop.add_signal_handler(signal.SIGPIPE, print)
    assert aloop.remove_signal_handler(signal.SIGPIPE)
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN


def test_a_python_handler_put_back_still_reaches_the_loop(aloop):
    # Code that sets its own handler and puts ours back: the signal then
    # comes through Python's handler, and still to the loop.
    calls = []

    async def main():
        aloop.add_signal_handler(signal.SIGUSR1, calls.append, "loop")
        ours = signal.signal(signal.SIGUSR1, lambda *args: calls.append("theirs"))
        os.kill(os.getpid(), signal.SIGUSR1)
        await until(lambda: calls)
        signal.signal(signal.SIGUSR1, ours)
        os.kill(os.getpid(), signal.SIGUSR1)
        await until(lambda: len(calls) == 2)

    run(aloop, main())
    assert calls == ["theirs", "loop"]
    assert aloop.remove_signal_handler(signal.SIGUSR1)


ASYNCIO_RUN_CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys
    sys.path.insert(0, {root!r})
    import aioswift

    async def main():
        loop = asyncio.get_running_loop()
        # A handler for another signal, added and removed, leaves asyncio.run's
        # SIGINT handling alone.
        loop.add_signal_handler(signal.SIGUSR1, print)
        loop.remove_signal_handler(signal.SIGUSR1)
        loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            print("main cancelled")
            raise

    try:
        # asyncio.run's own machinery (loop_factory= comes with 3.12 there).
        with asyncio.Runner(loop_factory=aioswift.new_event_loop) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
""")


def test_asyncio_run_s_own_sigint_handling():
    proc = subprocess.run([sys.executable, "-c", ASYNCIO_RUN_CHILD.format(root=ROOT)],
                          capture_output=True, text=True, timeout=30)
    assert proc.stdout.split("\n")[:2] == ["main cancelled", "KeyboardInterrupt"], proc.stderr


WAKE_THREAD_CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from aioswift import _native

    def threads():
        return set(os.listdir("/proc/self/task"))

    before = threads()
    _native.signal_wakeup_fd()
    for tid in sorted(threads() - before):
        with open(f"/proc/self/task/{{tid}}/status") as status:
            for line in status:
                if line.startswith("SigBlk:"):
                    print(line.split()[1])
""")


def test_the_wakeup_thread_blocks_signals():
    # The thread that reads Python's signal wakeup fd sits in read(): a
    # signal for the process must go to a thread that runs handlers (under
    # valgrind, which delivers a signal to a thread blocked in a system
    # call, a SIGTERM sent to the one in read() was lost).
    proc = subprocess.run([sys.executable, "-c", WAKE_THREAD_CHILD.format(root=ROOT)],
                          capture_output=True, text=True, timeout=30)
    masks = proc.stdout.split()
    assert len(masks) == 1, (proc.stdout, proc.stderr)
    blocked = int(masks[0], 16)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1):
        assert blocked & (1 << (sig - 1)), f"{sig.name} is not blocked: {masks[0]}"
