"""Subprocesses: subprocess_exec and subprocess_shell with real children
(this Python, /bin/sh), asyncio.create_subprocess_exec and _shell on top,
each body run on the stock loop and on aioswift's (`any_loop`), with the
fixtures' leak checks (the core's subprocess objects included)."""

import asyncio
import os
import signal
import subprocess
import sys

import pytest

TIMEOUT = 8.0
PY = sys.executable
# A child that waits for its stdin to close (or for a signal).
BLOCKED = [PY, "-c", "import sys; sys.stdin.read()"]


def run(loop, coro, timeout=TIMEOUT):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class Recorder(asyncio.SubprocessProtocol):
    """Every call, in order; `done` at connection_lost."""

    def __init__(self, loop):
        self.loop = loop
        self.events = []
        self.data = {1: bytearray(), 2: bytearray()}
        self.done = loop.create_future()
        self.exited = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def pipe_data_received(self, fd, data):
        assert isinstance(data, bytes)
        self.data[fd] += data
        if ("data", fd) not in self.events:
            self.events.append(("data", fd))

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_lost", fd, exc))

    def process_exited(self):
        self.events.append("exited")
        self.exited.set_result(self.transport.get_returncode())

    def connection_lost(self, exc):
        self.events.append("lost")
        self.done.set_result(exc)


ECHO = ("import sys\n"
        "data = sys.stdin.buffer.read()\n"
        "sys.stdout.buffer.write(data.upper()); sys.stdout.flush()\n"
        "sys.stderr.buffer.write(b'err'); sys.stderr.flush()\n"
        "sys.exit(3)\n")


def test_the_protocol_gets_asyncio_s_calls_in_asyncio_s_order(any_loop):
    loop = any_loop

    async def main():
        transport, protocol = await loop.subprocess_exec(lambda: Recorder(loop), PY, "-c", ECHO)
        assert isinstance(transport, asyncio.SubprocessTransport)
        assert protocol.events == ["made"]      # before subprocess_exec returns
        pid = transport.get_pid()
        assert isinstance(pid, int) and pid > 0
        assert transport.get_returncode() is None
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        assert isinstance(transport.get_pipe_transport(1), asyncio.ReadTransport)
        assert isinstance(transport.get_pipe_transport(2), asyncio.ReadTransport)
        assert transport.get_pipe_transport(3) is None
        stdin.write(b"shout")
        stdin.close()
        assert await protocol.done is None
        return transport, protocol

    transport, protocol = run(loop, main())
    assert bytes(protocol.data[1]) == b"SHOUT"
    assert bytes(protocol.data[2]) == b"err"
    assert transport.get_returncode() == 3
    events = protocol.events
    assert events[0] == "made" and events[-1] == "lost"
    lost = [e for e in events if isinstance(e, tuple) and e[0] == "pipe_lost"]
    assert sorted(e[1] for e in lost) == [0, 1, 2]
    assert all(e[2] is None for e in lost)
    for fd in (1, 2):
        assert events.index(("data", fd)) < events.index(("pipe_lost", fd, None))
    assert events.count("exited") == 1
    assert events.index("exited") < events.index("lost")
    transport.close()
    transport.close()
    assert transport.is_closing()


def test_communicate_and_wait(any_loop):
    loop = any_loop

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", ECHO, stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE)
        out, err = await proc.communicate(b"quiet")
        return out, err, await proc.wait(), proc.returncode

    assert run(loop, main()) == (b"QUIET", b"err", 3, 3)


def test_a_megabyte_through_cat_and_back(any_loop):
    loop = any_loop
    payload = bytes(range(256)) * 4096

    async def main():
        proc = await asyncio.create_subprocess_exec("cat", stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE)
        out, _ = await proc.communicate(payload)
        return out, proc.returncode

    out, code = run(loop, main())
    assert out == payload and code == 0


def test_a_child_may_open_its_stdin_pipe_as_dev_stdin(any_loop):
    loop = any_loop

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "print(len(open('/dev/stdin', 'rb').read()))",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = await proc.communicate(b"12345")
        return out.strip(), proc.returncode

    assert run(loop, main()) == (b"5", 0)


def test_shell_commands(any_loop):
    loop = any_loop

    async def main():
        proc = await asyncio.create_subprocess_shell("echo $GREETING; exit 7",
                                                     stdout=subprocess.PIPE,
                                                     env={"GREETING": "hi"})
        out = await proc.stdout.read()
        return out, await proc.wait()

    assert run(loop, main()) == (b"hi\n", 7)


@pytest.mark.parametrize("how,code", [("kill", -signal.SIGKILL),
                                      ("terminate", -signal.SIGTERM),
                                      ("send_signal", -signal.SIGUSR1)])
def test_a_child_killed_by_a_signal(any_loop, how, code):
    loop = any_loop

    async def main():
        proc = await asyncio.create_subprocess_exec(*BLOCKED, stdin=subprocess.PIPE)
        if how == "send_signal":
            proc.send_signal(signal.SIGUSR1)
        else:
            getattr(proc, how)()
        return await proc.wait()

    assert run(loop, main()) == code


def test_signals_after_the_end_are_process_lookup_errors(any_loop):
    loop = any_loop

    async def main():
        transport, protocol = await loop.subprocess_exec(lambda: Recorder(loop), PY, "-c", "pass")
        await protocol.done
        for call in (transport.kill, transport.terminate,
                     lambda: transport.send_signal(signal.SIGTERM)):
            with pytest.raises(ProcessLookupError):
                call()
        transport.close()
        return transport.get_returncode()

    assert run(loop, main()) == 0


def test_close_kills_a_running_child(any_loop):
    loop = any_loop

    async def main():
        transport, protocol = await loop.subprocess_exec(lambda: Recorder(loop), *BLOCKED)
        transport.close()
        assert transport.is_closing()
        assert await protocol.exited == -signal.SIGKILL
        await protocol.done
        return transport._wait

    wait = run(loop, main())
    assert run(loop, wait()) == -signal.SIGKILL


def test_a_child_that_cannot_start_leaves_nothing_behind(any_loop, tmp_path):
    loop = any_loop
    missing = str(tmp_path / "no-such-program")

    async def main(**kwargs):
        with pytest.raises(OSError) as info:
            await asyncio.create_subprocess_exec(missing, stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, **kwargs)
        return info.value

    exc = run(loop, main())
    assert isinstance(exc, FileNotFoundError) and exc.filename == missing
    exc = run(loop, main(cwd=str(tmp_path / "no-such-dir")))
    assert isinstance(exc, FileNotFoundError)
    assert exc.filename == str(tmp_path / "no-such-dir")
    not_executable = tmp_path / "plain"
    not_executable.write_text("#!/bin/sh\n")
    missing = str(not_executable)
    exc = run(loop, main())
    assert isinstance(exc, PermissionError) and exc.filename == missing


def test_where_the_child_s_streams_go(any_loop, tmp_path):
    loop = any_loop
    code = "import sys; print('out'); print('err', file=sys.stderr)"

    async def main():
        # stderr=STDOUT: both in the stdout pipe.
        transport, protocol = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", code, stdin=subprocess.DEVNULL,
            stderr=subprocess.STDOUT)
        assert transport.get_pipe_transport(0) is None
        assert transport.get_pipe_transport(2) is None
        await protocol.done
        transport.close()
        merged = bytes(protocol.data[1])
        # A file object and a descriptor.
        with open(tmp_path / "out", "wb") as out:
            err_fd = os.open(tmp_path / "err", os.O_WRONLY | os.O_CREAT)
            try:
                proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdout=out,
                                                            stderr=err_fd)
                await proc.wait()
            finally:
                os.close(err_fd)
        # DEVNULL and None (inherited).
        proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL)
        assert proc.stdout is None and proc.stderr is None
        return merged, await proc.wait()

    merged, code = run(loop, main())
    assert merged.split() == [b"out", b"err"]
    assert code == 0
    assert (tmp_path / "out").read_bytes().strip() == b"out"
    assert (tmp_path / "err").read_bytes().strip() == b"err"


def test_popen_options_the_core_has(any_loop, tmp_path):
    loop = any_loop
    r, w = os.pipe()
    code = ("import os, sys\n"
            "print(os.getcwd()); print(os.environ.get('ONLY'), os.environ.get('HOME'))\n"
            "print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())\n"
            f"os.write({w}, b'passed')\n")

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdout=subprocess.PIPE, cwd=tmp_path, env={"ONLY": "this"},
            start_new_session=True, pass_fds=[w])
        out = await proc.stdout.read()
        await proc.wait()
        os.close(w)
        return out.decode().split("\n"), os.read(r, 100)

    try:
        lines, passed = run(loop, main())
    finally:
        os.close(r)
    assert lines[0] == str(tmp_path)
    assert lines[1] == "this None"
    assert lines[2] == "True True"
    assert passed == b"passed"


def test_executable_and_restore_signals(any_loop):
    # Popen's executable= runs another file with the program as argv[0] (for
    # a shell command, the shell); restore_signals gives SIGPIPE, which
    # Python ignores, its default back in the child, or leaves it ignored.
    loop = any_loop
    sigign = "sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status"

    async def output(make):
        proc = await make()
        out, _ = await proc.communicate()
        return out.decode().strip()

    async def main():
        argv0 = await output(lambda: asyncio.create_subprocess_exec(
            "named-by-argv0", "-c", "import sys; print(sys.orig_argv[0])", executable=PY,
            stdout=subprocess.PIPE))
        shell = await output(lambda: asyncio.create_subprocess_shell(
            "echo $0", executable="/bin/sh", stdout=subprocess.PIPE))
        masks = {}
        for restore in (True, False):
            masks[restore] = int(await output(lambda: asyncio.create_subprocess_shell(
                sigign, stdout=subprocess.PIPE, restore_signals=restore)), 16)
        return argv0, shell, masks

    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN      # Python's own
    argv0, shell, masks = run(loop, main())
    assert argv0 == "named-by-argv0"
    assert shell == "/bin/sh"
    pipe_bit = 1 << (signal.SIGPIPE - 1)
    assert not masks[True] & pipe_bit
    assert masks[False] & pipe_bit


def test_descriptors_are_closed_in_the_child_unless_passed(any_loop):
    loop = any_loop
    r, w = os.pipe()
    os.set_inheritable(w, True)

    async def main(**kwargs):
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", f"import os\ntry:\n os.fstat({w}); print('open')\n"
                      f"except OSError:\n print('closed')", stdout=subprocess.PIPE, **kwargs)
        out = await proc.stdout.read()
        await proc.wait()
        return out.strip()

    try:
        assert run(loop, main()) == b"closed"
        assert run(loop, main(close_fds=False)) == b"open"
    finally:
        os.close(r)
        os.close(w)


def test_asyncio_s_argument_rules(any_loop):
    loop = any_loop
    bad = [dict(universal_newlines=True), dict(text=True), dict(bufsize=1),
           dict(encoding="utf-8"), dict(errors="strict"), dict(shell=True)]
    for kwargs in bad:
        with pytest.raises(ValueError):
            run(loop, loop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass",
                                           **kwargs))
    with pytest.raises(ValueError, match="cmd must be a string"):
        run(loop, loop.subprocess_shell(asyncio.SubprocessProtocol, ["echo"]))
    with pytest.raises(ValueError, match="shell must be True"):
        run(loop, loop.subprocess_shell(asyncio.SubprocessProtocol, "echo", shell=False))
    with pytest.raises(TypeError):
        run(loop, loop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass",
                                       no_such_option=1))
    with pytest.raises(ValueError, match="embedded null byte"):
        run(loop, loop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass\0"))
    with pytest.raises(ValueError, match="illegal environment variable name"):
        run(loop, loop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass",
                                       env={"A=B": "c"}))


def test_popen_options_the_core_has_not_are_refused(aloop):
    for kwargs in (dict(preexec_fn=lambda: None), dict(user=0), dict(group=0),
                   dict(extra_groups=[0]), dict(umask=0o22)):
        with pytest.raises(ValueError, match="is not supported"):
            run(aloop, aloop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass",
                                             **kwargs))


def test_a_full_stdout_reader_pauses_the_pipe(any_loop):
    loop = any_loop

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import sys; sys.stdout.write('x' * 5000)", stdout=subprocess.PIPE,
            limit=100)
        pipe = proc._transport.get_pipe_transport(1)
        for _ in range(500):
            if not pipe.is_reading() or pipe.is_closing():
                break
            await asyncio.sleep(0.01)
        paused = not pipe.is_reading()
        out = await proc.stdout.read()
        await proc.wait()
        return paused, out

    paused, out = run(loop, main())
    assert paused
    assert out == b"x" * 5000


def test_stdin_drain_waits_for_a_slow_child(any_loop):
    loop = any_loop

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import sys, time; time.sleep(0.2); print(len(sys.stdin.buffer.read()))",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        proc.stdin.write(b"z" * (1 << 20))
        await proc.stdin.drain()
        proc.stdin.close()
        out = await proc.stdout.read()
        return out.strip(), await proc.wait()

    assert run(loop, main()) == (str(1 << 20).encode(), 0)


def test_a_child_that_stops_reading_is_a_broken_pipe(any_loop):
    loop = any_loop

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", "pass", stdin=subprocess.PIPE)
        await proc.wait()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                proc.stdin.write(b"x" * 65536)
                await proc.stdin.drain()
        # communicate ignores it, as asyncio does.
        await proc.communicate(b"more")
        return proc.returncode

    assert run(loop, main()) == 0


def test_a_cancelled_start_kills_the_child(any_loop):
    loop = any_loop

    async def main():
        task = asyncio.ensure_future(loop.subprocess_exec(asyncio.SubprocessProtocol, *BLOCKED))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(loop, main())


# The stock loop starts the child before it finds the loop closed, and
# leaves its pipe-connecting coroutine unawaited.
@pytest.mark.filterwarnings("ignore:coroutine 'BaseSubprocessTransport._connect_pipes'")
def test_a_closed_loop_starts_no_child(any_loop):
    loop = any_loop
    loop.close()
    coro = loop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass")
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        coro.send(None)


def test_a_loop_closed_under_a_running_child_kills_it(request):
    import aioswift
    loop = aioswift.new_event_loop()
    before = aioswift.live_objects()["subprocess"]

    async def main():
        return await loop.subprocess_exec(asyncio.SubprocessProtocol, *BLOCKED)

    transport, _ = run(loop, main())
    pid = transport.get_pid()
    loop.close()
    # Killed and reaped by the core: the pid names nothing any more.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    transport.close()
    del transport
    assert aioswift.live_objects()["subprocess"] == before


def test_a_signal_handler_for_sigchld_leaves_the_children_reaped(any_loop):
    loop = any_loop
    seen = []

    async def main():
        loop.add_signal_handler(signal.SIGCHLD, seen.append, "chld")
        try:
            proc = await asyncio.create_subprocess_exec(PY, "-c", "pass")
            code = await proc.wait()
            while not seen:
                await asyncio.sleep(0.01)
            return code
        finally:
            loop.remove_signal_handler(signal.SIGCHLD)

    assert run(loop, main()) == 0
    assert seen


def test_a_handler_from_signal_signal_leaves_the_children_reaped(any_loop):
    # signal.signal replaces the C handler of SIGCHLD that the loop's
    # library installed (libuv's): the children are still reaped, by their
    # pidfds, as asyncio's child watchers reap them without SIGCHLD.
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open (the core needs the same system call)")
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError as exc:
        pytest.skip(f"pidfd_open: {exc}")
    loop = any_loop
    seen = []

    async def main():
        first = await asyncio.create_subprocess_exec(PY, "-c", "import time; time.sleep(0.1)")
        previous = signal.signal(signal.SIGCHLD, lambda *_: seen.append("chld"))
        try:
            second = await asyncio.create_subprocess_exec(PY, "-c", "raise SystemExit(3)")
            return (await asyncio.wait_for(first.wait(), 10),
                    await asyncio.wait_for(second.wait(), 10))
        finally:
            signal.signal(signal.SIGCHLD, previous)

    assert run(loop, main()) == (0, 3)
    assert seen          # the signals went to the program's handler
