"""What the network benchmarks (echo_bench.py, udp_bench.py, http_bench.py)
share to run their servers and load generators: children that die with the
harness and are killed and reaped whatever happens, and the two outcomes a
run can have besides figures."""
import ctypes
import signal
import subprocess

LIVE = set()  # every process started and not yet reaped


class Skip(Exception):
    """The server cannot run here (not built, or it said so): not a failure."""


class Failed(Exception):
    """A server or the load did not do its job."""


def _die_with_parent():
    # Children get SIGTERM if the harness dies, even by SIGKILL.
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(argv, **kw):
    """subprocess.Popen(argv, **kw), a child that dies with the harness."""
    proc = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)
    LIVE.add(proc)
    return proc


def kill_all():
    """Kills and reaps every child still alive."""
    for proc in list(LIVE):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        LIVE.discard(proc)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def exit_on_termination():
    """SIGTERM and SIGHUP end the harness with SystemExit, so that its
    finally clauses kill the children."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
