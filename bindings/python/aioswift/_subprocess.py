"""subprocess_exec and subprocess_shell on the core's subprocesses
(aios_subprocess_exec, aios_subprocess_shell), with base_subprocess'
SubprocessTransport semantics.

The core starts the child (posix_spawn; every descriptor above 2 closed but
pass_fds; every signal's action the default in it, where Popen leaves the
signals the parent ignores ignored but SIGPIPE and SIGXFSZ: the core's spawn
options have no say in it), makes its pipes and reaps it; no child watcher
is involved. Its pipes are the core's stream
transports: get_pipe_transport(fd) gives pipe transports of _pipes.py over
them (their events come through the subprocess, as asyncio's pipe protocols
of a subprocess forward theirs).

stdin=PIPE is the exception: its pipe is made here, the child given its
read end as a descriptor, and its write end is a connect_write_pipe
transport of this loop, so that its 'pipe' is a file object, as asyncio's
proc.stdin. (The core's own pipes are pipes too, as asyncio's, since
aios_spawn_options_t.socket_pairs was added; this one could be the core's.) The
subprocess then finishes once the core's does and that pipe is closed too. The protocol's calls are asyncio's, in
asyncio's order, each with call_soon: connection_made, pipe_data_received,
pipe_connection_lost, process_exited, connection_lost; _wait() (what
asyncio.subprocess.Process.wait awaits) returns once the child exited and
its pipes closed.

Popen's keyword arguments that asyncio passes through: cwd, env,
start_new_session, process_group, pass_fds, close_fds (False: the
descriptors that are inheritable are passed), executable and restore_signals
are the core's spawn options. The others (preexec_fn, user, group,
extra_groups, umask, pipesize, startupinfo, creationflags) have no
equivalent there (the core starts children with posix_spawn, which runs no
code in the child) and are refused with ValueError; unknown ones are
TypeError, as Popen has them.
"""

import os
import signal
import subprocess
import warnings

from asyncio import base_events, protocols, transports

from . import _native
from ._errors import exception_for_code, exception_from_error
from ._future import CFuture
from ._network import _take_result
from ._pipes import ReadPipeTransport, WritePipeTransport
from ._runtime import NULL, ffi, lib
from ._transport import logger

# Popen's keyword arguments the core cannot honour, with the value that
# asks for nothing.
_UNSUPPORTED = {"preexec_fn": None, "user": None, "group": None,
                "extra_groups": None, "umask": -1, "pipesize": -1, "startupinfo": None,
                "creationflags": 0}
_SUPPORTED = {"cwd", "env", "start_new_session", "process_group", "pass_fds", "close_fds",
              "restore_signals", "executable"}


def _path_bytes(value):
    """A program, argument or cwd as bytes (Popen takes str, bytes and
    path-like objects); an embedded NUL is Popen's ValueError."""
    data = os.fsencode(value)
    if b"\0" in data:
        raise ValueError("embedded null byte")
    return data


def _stream(value, which):
    """(aios_child_stream_t, fd) for stdin=, stdout= or stderr=."""
    if value is None:
        return lib.AIOS_CHILD_INHERIT, 0
    if value == subprocess.PIPE:
        return lib.AIOS_CHILD_PIPE, 0
    if value == subprocess.DEVNULL:
        return lib.AIOS_CHILD_DEVNULL, 0
    if value == subprocess.STDOUT and which == "stderr":
        return lib.AIOS_CHILD_STDOUT, 0
    fd = value if isinstance(value, int) else value.fileno()
    if fd < 0:
        # Popen hands the child the number, which fails there.
        raise OSError(9, os.strerror(9))
    return lib.AIOS_CHILD_FD, fd


class SpawnOptions:
    """aios_spawn_options_t for the streams and Popen's keyword arguments,
    and the C memory it points to (alive as long as this object)."""

    def __init__(self, stdin, stdout, stderr, kwargs):
        for name in kwargs:
            if name in _UNSUPPORTED:
                if kwargs[name] != _UNSUPPORTED[name]:
                    raise ValueError(f"aioswift: subprocess {name}= is not supported (the core "
                                     f"starts children with posix_spawn and has no such option)")
            elif name not in _SUPPORTED:
                raise TypeError(f"__init__() got an unexpected keyword argument '{name}'")
        options = self.options = ffi.new("aios_spawn_options_t *")
        options.size = ffi.sizeof("aios_spawn_options_t")
        self._keep = []
        options.stdin_mode, options.stdin_fd = _stream(stdin, "stdin")
        options.stdout_mode, options.stdout_fd = _stream(stdout, "stdout")
        options.stderr_mode, options.stderr_fd = _stream(stderr, "stderr")
        cwd = kwargs.get("cwd")
        self.cwd = cwd
        if cwd is not None:
            options.cwd = self._string(_path_bytes(cwd))
        env = kwargs.get("env")
        if env is not None:
            entries = []
            for key, value in env.items():
                key = os.fsencode(key)
                if b"=" in key:
                    raise ValueError("illegal environment variable name")
                entry = key + b"=" + os.fsencode(value)
                if b"\0" in entry:
                    raise ValueError("embedded null byte")
                entries.append(entry)
            options.env = self._strings(entries)
        options.start_new_session = 1 if kwargs.get("start_new_session") else 0
        # Popen's: SIGPIPE and SIGXFSZ (which Python ignores) back to their
        # default, or every ignored signal left ignored.
        options.signals = (lib.AIOS_CHILD_SIGNALS_RESTORE if kwargs.get("restore_signals", True)
                           else lib.AIOS_CHILD_SIGNALS_INHERIT)
        executable = kwargs.get("executable")
        if executable is not None:
            options.executable = self._string(_path_bytes(executable))
        group = kwargs.get("process_group")
        if group is not None and group >= 0:
            options.use_process_group = 1
            options.process_group = group
        pass_fds = tuple(kwargs.get("pass_fds", ()))
        if pass_fds and kwargs.get("close_fds", True) is False:
            warnings.warn("pass_fds overriding close_fds.", RuntimeWarning, stacklevel=4)
        elif not kwargs.get("close_fds", True):
            pass_fds = _inheritable_fds()
        keep = sorted({int(fd) for fd in pass_fds})
        if any(fd < 0 for fd in keep):
            raise ValueError("bad value(s) in fds_to_keep")
        if keep:
            array = ffi.new("int[]", keep)
            self._keep.append(array)
            options.pass_fds = array
            options.pass_fds_count = len(keep)

    def _string(self, data):
        c = ffi.new("char[]", data)
        self._keep.append(c)
        return c

    def _strings(self, items):
        array = ffi.new("const char *[]", len(items) + 1)
        for i, item in enumerate(items):
            array[i] = self._string(item)
        array[len(items)] = NULL
        self._keep.append(array)
        return array


def _inheritable_fds():
    """close_fds=False: the descriptors above 2 the child would inherit."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            if os.get_inheritable(fd):
                found.append(fd)
        except OSError:
            pass            # the listing's own descriptor, closed since
    return found


class _PipeProtocol(protocols.BaseProtocol):
    """The protocol of a child's pipe (asyncio's WriteSubprocessPipeProto and
    ReadSubprocessPipeProto): the pipe's end and flow control go to the
    subprocess's protocol."""

    def __init__(self, proc, fd):
        self.proc = proc
        self.fd = fd
        self.pipe = None
        self.disconnected = False

    def connection_made(self, transport):
        self.pipe = transport

    def __repr__(self):
        return f"<{type(self).__name__} fd={self.fd} pipe={self.pipe!r}>"

    def connection_lost(self, exc):
        self.disconnected = True
        if self.proc is not None:       # None: the child never started
            self.proc._pipe_connection_lost(self.fd, exc)
        self.proc = None

    def pause_writing(self):
        self.proc._protocol.pause_writing()

    def resume_writing(self):
        self.proc._protocol.resume_writing()


class _SubprocessPipe:
    """A child's pipe: its Channel has no token, its bytes go to the
    subprocess's protocol and its end comes through the subprocess."""

    def _io_end(self, exc):
        self._lost_with(exc)
        self._chan.release()


class SubprocessReadPipe(_SubprocessPipe, ReadPipeTransport):
    """The transport of a child's stdout or stderr."""


class SubprocessWritePipe(_SubprocessPipe, WritePipeTransport):
    """The transport of a child's stdin."""


class SubprocessTransport(transports.SubprocessTransport):
    """A child process of the core (asyncio's BaseSubprocessTransport)."""

    def __init__(self, loop, protocol, program, extra=None):
        super().__init__(extra)
        self._loop = loop
        self._protocol = protocol
        self._program = program
        self._relay = _native.Relay(loop._core, self)
        self._closed = False
        self._pid = None
        self._returncode = None
        self._exit_waiters = []
        self._pipes = {}                # fd -> _PipeProtocol
        self._connected = False
        self._core_finished = False     # the core's connection_lost came
        self._finish_scheduled = False
        self._finished = False          # connection_lost ran (asyncio's _proc is None)

    def __repr__(self):
        info = [type(self).__name__]
        if self._closed:
            info.append("closed")
        if self._pid is not None:
            info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        elif self._pid is not None:
            info.append("running")
        else:
            info.append("not started")
        stdin = self._pipes.get(0)
        if stdin is not None:
            info.append(f"stdin={stdin.pipe}")
        stdout = self._pipes.get(1)
        stderr = self._pipes.get(2)
        if stdout is not None and stderr is stdout:
            info.append(f"stdout=stderr={stdout.pipe}")
        else:
            if stdout is not None:
                info.append(f"stdout={stdout.pipe}")
            if stderr is not None:
                info.append(f"stderr={stderr.pipe}")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn=warnings.warn):
        if not getattr(self, "_closed", True):
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            loop = self._loop
            if loop is None or not loop.is_closed():
                self.close()

    # -- asyncio.SubprocessTransport ------------------------------------------

    def set_protocol(self, protocol):
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closed

    def close(self):
        """Close the pipes; kill the child if it still runs."""
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            if proto.pipe is not None:
                proto.pipe.close()
        if self._finished or not self._connected:
            return              # not started yet: done at _io_connected
        if self._returncode is None and self._running() and self._loop.get_debug():
            logger.warning("Close running child process: kill %r", self)
        self._relay.close()

    def _running(self):
        # The core knows of an exit before the protocol is told of it.
        try:
            return self._relay.returncode() is None
        except ProcessLookupError:
            return False

    def get_pid(self):
        return self._pid

    def get_returncode(self):
        return self._returncode

    def get_pipe_transport(self, fd):
        proto = self._pipes.get(fd)
        return proto.pipe if proto is not None else None

    def send_signal(self, signal):
        if self._finished:
            raise ProcessLookupError()
        try:
            self._relay.send_signal(signal)
        except ProcessLookupError:
            pass                # it exited: nothing to signal, as asyncio's os.kill

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    async def _wait(self):
        """The returncode, once the child exited and its pipes closed
        (asyncio.subprocess.Process.wait awaits this)."""
        if self._returncode is not None:
            return self._returncode
        waiter = self._loop.create_future()
        self._exit_waiters.append(waiter)
        return await waiter

    # -- the core's events (through the Relay) ---------------------------------

    def _io_connected(self):
        self._connected = True
        self._pid = self._relay.pid()
        if self._loop.get_debug():
            logger.debug("process %r created: pid %s", self._program, self._pid)
        for fd in (0, 1, 2):
            if fd in self._pipes:
                continue                # stdin, made by _make_subprocess
            chan = self._relay.pipe_channel(fd)
            if chan is None:
                continue
            proto = _PipeProtocol(self, fd)
            pipe_class = SubprocessWritePipe if fd == 0 else SubprocessReadPipe
            pipe = pipe_class(self._loop, chan, proto)
            proto.connection_made(pipe)
            self._pipes[fd] = proto
        self._loop.call_soon(self._protocol.connection_made, self)
        if self._closed:
            # Closed while it was starting (a cancelled subprocess_exec).
            self._closed = False
            self.close()

    def _io_pipe_lost(self, fd, error):
        proto = self._pipes.get(fd)
        if proto is None or proto.pipe is None:
            return
        exc = exception_from_error(ffi.cast("aios_error_t *", error)) if error is not None \
            else None
        proto.pipe._io_end(exc)

    def _pipe_connection_lost(self, fd, exc):
        self._loop.call_soon(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _io_exited(self):
        returncode = self._relay.returncode()
        if self._loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        self._returncode = returncode
        self._loop.call_soon(self._protocol.process_exited)

    def _io_finished(self, error):
        self._core_finished = True
        self._try_finish()

    def _try_finish(self):
        # asyncio's: once the child exited and every pipe is closed.
        if not self._core_finished or self._finish_scheduled:
            return
        if all(proto.disconnected for proto in self._pipes.values()):
            self._finish_scheduled = True
            self._loop.call_soon(self._call_connection_lost, None)

    def _io_pause_writing(self, paused):
        proto = self._pipes.get(0)
        if proto is None or proto.pipe is None:
            return
        if paused:
            proto.pipe._maybe_pause_protocol()
        else:
            proto.pipe._chan._io_resumed()

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            for waiter in self._exit_waiters:
                if not waiter.cancelled():
                    waiter.set_result(self._returncode)
            self._exit_waiters = None
            self._finished = True
            self._protocol = None


def _spawn_error(status, program, options):
    """The call's error as Popen raises it: OSError(errno, message,
    filename), the filename the cwd when that is what failed."""
    if status > -3000:
        number = -status
        filename = program
        if options.cwd is not None and not os.path.isdir(options.cwd):
            filename = options.cwd
        return OSError(number, os.strerror(number), filename)
    return exception_for_code(status)


class SubprocessMixin:
    """subprocess_exec and subprocess_shell of aioswift.Loop."""

    async def subprocess_exec(self, protocol_factory, program, *args, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=False, shell=False, bufsize=0, encoding=None,
                              errors=None, text=None, **kwargs):
        """asyncio's subprocess_exec: run `program` with `args`; returns
        (transport, protocol)."""
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if shell:
            raise ValueError("shell must be False")
        if bufsize != 0:
            raise ValueError("bufsize must be 0")
        if text:
            raise ValueError("text must be False")
        if encoding is not None:
            raise ValueError("encoding must be None")
        if errors is not None:
            raise ValueError("errors must be None")
        popen_args = (program,) + args
        protocol = protocol_factory()
        debug_log = None
        if self._debug:
            # No arguments: they may hold secrets.
            debug_log = f"execute program {program!r}"
            base_events.BaseEventLoop._log_subprocess(self, debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess(protocol, popen_args, False, stdin, stdout,
                                                stderr, kwargs)
        if self._debug and debug_log is not None:
            logger.info("%s: %r", debug_log, transport)
        return transport, protocol

    async def subprocess_shell(self, protocol_factory, cmd, *, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=False, shell=True, bufsize=0, encoding=None,
                               errors=None, text=None, **kwargs):
        """asyncio's subprocess_shell: run `cmd` with /bin/sh -c."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if not shell:
            raise ValueError("shell must be True")
        if bufsize != 0:
            raise ValueError("bufsize must be 0")
        if text:
            raise ValueError("text must be False")
        if encoding is not None:
            raise ValueError("encoding must be None")
        if errors is not None:
            raise ValueError("errors must be None")
        protocol = protocol_factory()
        debug_log = None
        if self._debug:
            debug_log = "run shell command %r" % cmd
            base_events.BaseEventLoop._log_subprocess(self, debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess(protocol, cmd, True, stdin, stdout, stderr,
                                                kwargs)
        if self._debug and debug_log is not None:
            logger.info("%s: %r", debug_log, transport)
        return transport, protocol

    async def _make_subprocess(self, protocol, args, shell, stdin, stdout, stderr, kwargs):
        self._check_closed()
        self._core.claim()
        stdin_pipe = None
        if stdin == subprocess.PIPE:
            # Made here, for its file object (see the module's doc).
            read_end, write_end = os.pipe()
            stdin_pipe = (read_end, open(write_end, "wb", buffering=0))
            stdin = read_end
        try:
            return await self._spawn(protocol, args, shell, stdin, stdout, stderr, kwargs,
                                     stdin_pipe)
        finally:
            if stdin_pipe is not None:
                os.close(stdin_pipe[0])

    async def _spawn(self, protocol, args, shell, stdin, stdout, stderr, kwargs, stdin_pipe):
        try:
            options = SpawnOptions(stdin, stdout, stderr, kwargs)
        except BaseException:
            if stdin_pipe is not None:
                stdin_pipe[1].close()
            raise
        if shell:
            program = "/bin/sh"
            command = _path_bytes(args)
        else:
            program = args[0]
            argv = [_path_bytes(a) for a in args[1:]]
            argv_c = options._strings(argv)
            file_c = _path_bytes(program)
        transport = SubprocessTransport(self, protocol, args if shell else program)
        if stdin_pipe is not None:
            proto = _PipeProtocol(transport, 0)
            try:
                await self.connect_write_pipe(lambda: proto, stdin_pipe[1])
            except BaseException:
                transport._closed = True
                stdin_pipe[1].close()
                raise
            transport._pipes[0] = proto
        relay = transport._relay
        table = ffi.new("aios_subprocess_protocol_t *")
        table.size = ffi.sizeof("aios_subprocess_protocol_t")
        relay.fill(int(ffi.cast("uintptr_t", table)))
        out = ffi.new("aios_future_t **")
        if shell:
            status = lib.aios_subprocess_shell(self._ptr, table, command, options.options, out)
        else:
            status = lib.aios_subprocess_exec(self._ptr, table, file_c, argv_c, options.options,
                                              out)
        if status < 0:
            relay.abandon(True)
            transport._closed = True
            stdin_proto = transport._pipes.pop(0, None)
            if stdin_proto is not None:
                stdin_proto.proc = None     # no callback: nothing started
                stdin_proto.pipe.abort()
            raise _spawn_error(status, program, options)
        cfuture = CFuture(self, out[0])
        try:
            await self._wait_cfuture(cfuture)
            value, destructor = _take_result(cfuture)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            # As asyncio's: the child is killed and waited for.
            transport.close()
            await transport._wait()
            raise
        # The subprocess's reference the result held: the Relay has its own.
        destructor(value)
        return transport


__all__ = ["SubprocessMixin", "SubprocessTransport"]
