"""The echo benchmark: echo servers side by side under one load generator.

    python3 bench/py/echo_bench.py [WORD...]

Starts every server of SERVERS (only those whose name contains one of the
WORDs, when given, plus the references raw libuv and uvloop), pinned to
CPU 0, all at once; then, for each row of ROWS (CONNECTIONS connections,
each with one message of SIZE bytes in flight), runs ROUNDS rounds in
which every server takes a turn under bench/bin/echo_load pinned to CPU 1,
in alternate orders, so that a machine that slows down for a while slows
every server alike. For each server and row: the medians over its rounds
of messages per second, the server's CPU time per message (the run time
of its threads in /proc/PID/task/*/schedstat, in nanoseconds, sampled when
the load generator's counted part starts and ends), and the p50 and p99 round trip. Then, on a fresh server, the
growth of its resident set (VmRSS) once IDLE connections are open and
idle (the soft RLIMIT_NOFILE is raised to the hard limit first, for the
servers too). The tables give each server's ratios to raw libuv and to
uvloop: the median over the rounds of the ratio within a round, whose
turns run back to back (a shared machine's speed drifts by tens of percent
from one round to the next, much less between adjacent turns), with the
lowest and highest of those ratios beside the one to uvloop.

Each server gets a free port as its last argument, is ready when a connect
to that port succeeds (polled for up to 5 s), and is stopped with SIGTERM
(then SIGKILL after 5 s). A server whose program does not exist, or which
exits with status 77 before it is ready (echo_server.py does when uvloop or aioswift
cannot be imported), is skipped with a message. Every server and load
generator started is killed when the harness ends, however it ends.

Knobs (environment): BENCH_ECHO_SECONDS=1.5 (counted seconds per turn),
BENCH_ECHO_WARMUP=0.5 (uncounted seconds before), BENCH_ECHO_ROUNDS=3,
BENCH_ECHO_IDLE=10000 (idle connections; 0 skips the memory part). The
table marks a row during which other processes kept more than 0.15 CPU
busy (median over its rounds). The Python servers run on the interpreter
that runs this script.
Build the C programs with `make bench/bin/echo_load bench/bin/echo_uv`.
Raw lines of the last run: bench/bin/echo_results.txt. Exit status 1 when a
server or the load generator failed.
"""
import os
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from harness import LIVE, Failed, Skip, exit_on_termination, kill_all, spawn
from procstat import busy_seconds, cpu_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bench", "bin")
LOAD = os.path.join(BIN, "echo_load")
PY = [sys.executable, os.path.join(ROOT, "bench", "py", "echo_server.py")]

# The servers, one a line: name, style, command line (the port is appended).
# The style picks the uvloop server its ratio is taken against: "transport"
# is compared with uvloop protocol, "streams" with uvloop streams.
SERVERS = [
    ("raw libuv", "transport", [os.path.join(BIN, "echo_uv")]),
    ("asyncio protocol", "transport", PY + ["--loop=asyncio", "--style=protocol"]),
    ("asyncio streams", "streams", PY + ["--loop=asyncio", "--style=streams"]),
    ("uvloop protocol", "transport", PY + ["--loop=uvloop", "--style=protocol"]),
    ("uvloop streams", "streams", PY + ["--loop=uvloop", "--style=streams"]),
    ("aioswift protocol", "transport", PY + ["--loop=aioswift", "--style=protocol"]),
    ("aioswift streams", "streams", PY + ["--loop=aioswift", "--style=streams"]),
    ("aios C transport", "transport", [os.path.join(BIN, "echo_aios_transport")]),
    ("aios C streams", "streams", [os.path.join(BIN, "echo_aios_streams")]),
    ("aios Swift streams", "streams", [os.path.join(ROOT, ".build", "release", "aio-echo-server")]),
]
LIBUV = "raw libuv"
UVLOOP = {"transport": "uvloop protocol", "streams": "uvloop streams"}

# (connections, message size in bytes)
ROWS = [(1, 100), (10, 100), (100, 100), (10, 16 * 1024)]

SECONDS = float(os.environ.get("BENCH_ECHO_SECONDS", "1.5"))
WARMUP = float(os.environ.get("BENCH_ECHO_WARMUP", "0.5"))
IDLE = int(os.environ.get("BENCH_ECHO_IDLE", "10000"))
READY_SECONDS = 5
# Descriptors a server may hold besides its connections (listener, epoll,
# pipes, the interpreter's files): at its limit a server resets connections.
FD_MARGIN = 64
HOST = "127.0.0.1"
SKIP_STATUS = 77
# A row during which other processes kept more than this many CPUs busy is
# marked: its rate says more about the machine than about the server.
NOISY = 0.15
ROUNDS = int(os.environ.get("BENCH_ECHO_ROUNDS", "3"))

# --------------------------------------------------------------- processes

def pinning():
    """The taskset prefixes (server, load generator), or empty ones when
    this machine cannot pin to CPUs 0 and 1."""
    if shutil.which("taskset") and {0, 1} <= os.sched_getaffinity(0):
        return ["taskset", "-c", "0"], ["taskset", "-c", "1"]
    print("echo: taskset or CPUs 0 and 1 unavailable: servers and load generator are not pinned")
    return [], []


PIN_SERVER, PIN_LOAD = pinning()


def reap(proc, grace=5.0):
    """Stops proc (SIGTERM, SIGKILL after `grace` seconds); its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    LIVE.discard(proc)
    return proc.returncode


def finish(proc, seconds, what):
    """Waits for proc to exit by itself; its exit status."""
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        raise Failed(f"{what} did not exit within {seconds} s") from None


def tail(fh, n=3):
    """The last n lines a process wrote to the file fh, on one line."""
    fh.seek(0)
    lines = fh.read().decode(errors="replace").strip().splitlines()
    return " ".join(lines[-n:])


def said(fh):
    """': what it wrote last', or nothing when it wrote nothing."""
    text = tail(fh)
    return f": {text}" if text else ""


def free_port():
    # The kernel's pick for port 0 is free now; the server binds it a moment later.
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise Failed("no VmRSS in /proc/PID/status")


class Lines:
    """The lines a process writes on a pipe, each awaited until a deadline."""

    def __init__(self, pipe):
        self.fd = pipe.fileno()
        self.buf = b""

    def next(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise Failed("the load generator did not answer in time")
            chunk = os.read(self.fd, 4096)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


class Server:
    def __init__(self, name, argv):
        self.name, self.argv = name, argv
        self.tag = name.replace(" ", "_")  # its name in the raw lines
        self.proc = None

    def start(self):
        if not os.path.exists(self.argv[0]):
            raise Skip(f"{self.argv[0]} does not exist (not built)")
        self.port = free_port()
        self.err = tempfile.TemporaryFile()
        try:
            self.proc = spawn(PIN_SERVER + self.argv + [str(self.port)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)
        except OSError as e:
            raise Failed(f"cannot start {self.argv[0]}: {e}") from None
        deadline = time.monotonic() + READY_SECONDS
        while True:
            rc = self.proc.poll()
            if rc is not None:
                LIVE.discard(self.proc)
                if rc == SKIP_STATUS:
                    raise Skip(tail(self.err) or "the server asked to be skipped")
                raise Failed(f"{status_text(rc)} before it was ready{said(self.err)}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    reap(self.proc)
                    raise Failed(f"not accepting connections on port {self.port} "
                                 f"after {READY_SECONDS} s{said(self.err)}")
                time.sleep(0.01)

    def check_alive(self):
        rc = self.proc.poll()
        if rc is not None:
            LIVE.discard(self.proc)
            raise Failed(f"the server {status_text(rc)}{said(self.err)}")

    def stop(self, quiet=False):
        """Stops the server. Raises Failed when it had exited by itself (unless
        quiet); returns a note when it did not exit with 0 on SIGTERM."""
        if self.proc is None:
            return None
        alive = self.proc.poll() is None
        rc = reap(self.proc)
        self.proc = None
        if not alive and not quiet:
            raise Failed(f"the server {status_text(rc)} before it was stopped{said(self.err)}")
        if alive and rc != 0:
            return f"{self.name}: on SIGTERM it {status_text(rc)}{said(self.err)}"
        return None


def status_text(rc):
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


# --------------------------------------------------------------- measuring

def drive(server, conns, size, seconds, warmup, at_start, at_end, hold=False, slack=15):
    """Puts one row to a running server with echo_load. Calls at_start(pid)
    when the counted part starts and at_end(pid) when it has ended, with the
    load generator's pid; returns (echo_load's result line, what at_start
    and at_end returned). With `hold`, echo_load keeps its connections open
    until at_end has returned (ECHO_LOAD_HOLD), so that the server's closing
    of them falls outside what at_end measures. echo_load must have answered
    `slack` seconds after its counted part."""
    err = tempfile.TemporaryFile()
    env = dict(os.environ, ECHO_LOAD_HOLD="1") if hold else None
    lg = spawn(PIN_LOAD + [LOAD, HOST, str(server.port), str(conns), str(size),
                           str(seconds), str(warmup)],
               stdin=subprocess.PIPE if hold else subprocess.DEVNULL,
               stdout=subprocess.PIPE, stderr=err, env=env)
    first = last = result = None
    started = False
    try:
        lines = Lines(lg.stdout)
        deadline = time.monotonic() + warmup + seconds + slack
        while True:
            line = lines.next(deadline)
            if line is None:
                break
            if line.startswith("# warm-up done"):
                first = at_start(lg.pid)
                started = True
            elif line.startswith("echo "):
                if started:
                    last = at_end(lg.pid)
                    result = line
                if hold:
                    lg.stdin.close()
        rc = finish(lg, 10, "echo_load")
    finally:
        if hold and not lg.stdin.closed:
            lg.stdin.close()
        reap(lg)
        lg.stdout.close()
    if rc != 0 or result is None:
        server.check_alive()
        raise Failed(f"echo_load exit status {rc}{said(err)}")
    if int(result.split()[1]) == 0:
        raise Failed("no round trip completed in the counted time")
    return result, first, last


def run_row(server, conns, size):
    """One row against a running server: the load generator's fields plus
    the server's CPU seconds over the counted part."""
    # (server CPU, load generator CPU, all CPUs busy, wall clock)
    result, first, last = drive(server, conns, size, SECONDS, WARMUP,
                                lambda lg: sample(server.proc.pid, lg),
                                lambda lg: sample(server.proc.pid, lg))
    fields = result.split()
    r = dict(f.split("=", 1) for f in fields[3:])
    msgs = int(fields[1])
    srv, load, busy, wall = (b - a for a, b in zip(first, last))
    return {
        "line": result,
        "msgs": msgs,
        "rate": float(r["msgs_per_s"]),
        "p50": float(r["p50_us"]),
        "p99": float(r["p99_us"]),
        "cpu_us": srv / msgs * 1e6,
        "other": max(busy - srv - load, 0) / wall if wall > 0 else 0.0,
    }


def sample(server_pid, load_pid):
    return (cpu_seconds(server_pid), cpu_seconds(load_pid), busy_seconds(), time.monotonic())


def run_idle(server):
    """Idle connections against a fresh server: how many, and its RSS before and after."""
    err = tempfile.TemporaryFile()
    before = rss_bytes(server.proc.pid)
    lg = spawn(PIN_LOAD + [LOAD, "--idle", HOST, str(server.port), str(IDLE), "60"],
               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    try:
        line = Lines(lg.stdout).next(time.monotonic() + 60)
        if line is None or not line.startswith("idle "):
            finish(lg, 10, "echo_load --idle")
            server.check_alive()
            raise Failed(f"echo_load --idle exit status {lg.returncode}{said(err)}")
        after = rss_bytes(server.proc.pid)
        lg.stdin.close()  # lets it close the connections and exit
        rc = finish(lg, 30, "echo_load --idle")
    finally:
        reap(lg)
        lg.stdout.close()
    if rc != 0:
        raise Failed(f"echo_load --idle exit status {rc}{said(err)}")
    opened = int(line.split()[1])
    note = tail(err) if opened < IDLE else ""
    return {"line": line, "opened": opened, "before": before, "after": after, "note": note}


# --------------------------------------------------------------- report

def row_name(conns, size):
    return f"{conns}x{size // 1024}KiB" if size % 1024 == 0 else f"{conns}x{size}B"


def si(x):
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.1f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def round_ratios(r, ref, key):
    """r's ratios to ref for `key`, one per round both ran in."""
    if r is None or ref is None:
        return []
    return [x[key] / ref["by_turn"][t][key] for t, x in sorted(r["by_turn"].items())
            if t in ref["by_turn"] and ref["by_turn"][t][key]]


def paired(r, ref, key):
    """The median of the per-round ratios (see the docstring)."""
    ratios = round_ratios(r, ref, key)
    return f"{statistics.median(ratios):.2f}x" if ratios else "-"


def spread(r, ref, key):
    ratios = round_ratios(r, ref, key)
    return f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"


def print_table(servers, styles, results):
    print(f"\n== echo: medians of {ROUNDS} turns of {SECONDS:g} s per row after {WARMUP:g} s of warm-up,"
          " one message in flight per connection")
    print("   cpu/msg: the server's run time (schedstat) over the counted part / its messages."
          " Ratios: rate = server msgs/s / reference msgs/s,")
    print("   cpu = server cpu/msg / reference cpu/msg (below 1 is cheaper), each the median of the"
          " ratios within a round; range: their lowest and highest.")
    print("   The uvloop reference"
          " is uvloop protocol for transport-style servers, uvloop streams for streams.")
    print(f"   other: CPUs kept busy by other processes meanwhile; ! marks a row above {NOISY:g}"
          " (a shared machine: run it again)")
    head = (f"{'server':<20} {'row':<9} {'msgs/s':>9} {'cpu us/msg':>10} {'p50 us':>8} {'p99 us':>8}"
            f" {'other':>6} | {'libuv rate':>10} {'cpu':>6} | {'uvloop rate':>11} {'range':>9}"
            f" {'cpu':>6} {'range':>9}")
    print(head)
    print("-" * len(head))
    for conns, size in ROWS:
        row = row_name(conns, size)
        base = results.get((LIBUV, row))
        for name in servers:
            r = results.get((name, row))
            if r is None:
                continue
            uv = results.get((UVLOOP[styles[name]], row))
            mark = "!" if r["other"] > NOISY else " "
            print(f"{name:<20} {row:<9} {si(r['rate']):>9} {r['cpu_us']:>10.2f} {r['p50']:>8.1f}"
                  f" {r['p99']:>8.1f} {r['other']:>5.2f}{mark}"
                  f" | {paired(r, base, 'rate'):>10} {paired(r, base, 'cpu_us'):>6}"
                  f" | {paired(r, uv, 'rate'):>11} {spread(r, uv, 'rate'):>9}"
                  f" {paired(r, uv, 'cpu_us'):>6} {spread(r, uv, 'cpu_us'):>9}")
        print()


def print_memory(servers, styles, idle):
    if not idle:
        return
    print(f"== idle connections: server VmRSS growth with {IDLE} connections open, each having"
          " echoed one byte, then idle")
    head = (f"{'server':<20} {'conns':>6} {'RSS before':>11} {'RSS after':>11} {'bytes/conn':>11}"
            f" | {'libuv':>6} | {'uvloop':>6}")
    print(head)
    print("-" * len(head))

    def per_conn(m):
        return (m["after"] - m["before"]) / m["opened"] if m and m["opened"] else None

    base = per_conn(idle.get(LIBUV))
    for name in servers:
        m = idle.get(name)
        if m is None:
            continue
        p = per_conn(m)
        uv = per_conn(idle.get(UVLOOP[styles[name]]))
        print(f"{name:<20} {m['opened']:>6} {m['before'] / 2**20:>9.1f}Mi {m['after'] / 2**20:>9.1f}Mi"
              f" {'-' if p is None else f'{p:.0f}':>11} | {ratio(p, base):>6} | {ratio(p, uv):>6}")
        if m["note"]:
            print(f"{'':<20} note: {m['note']}")
    print()


# --------------------------------------------------------------- main

def chosen_servers(words):
    """The SERVERS whose name holds one of `words` (any case), with the
    references; all of them when no word is given."""
    refs = {LIBUV} | set(UVLOOP.values())
    return [s for s in SERVERS
            if not words or s[0] in refs or any(w.lower() in s[0].lower() for w in words)]


def main():
    global IDLE
    words = sys.argv[1:]
    if any(w.startswith("-") for w in words):
        sys.exit(__doc__)
    if not os.access(LOAD, os.X_OK):
        sys.exit(f"echo: {LOAD} is missing: make bench/bin/echo_load bench/bin/echo_uv")
    chosen = chosen_servers(words)
    styles = {name: style for name, style, _ in SERVERS}
    # The servers inherit it: each must hold IDLE connections, plus its own files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if IDLE and hard != resource.RLIM_INFINITY and IDLE > hard - FD_MARGIN:
        print(f"echo: the hard RLIMIT_NOFILE is {hard}: {hard - FD_MARGIN} idle connections, not {IDLE}")
        IDLE = max(hard - FD_MARGIN, 1)
    start = time.monotonic()
    results, idle, failures, skipped, notes = {}, {}, [], [], []
    os.makedirs(BIN, exist_ok=True)
    raw = open(os.path.join(BIN, "echo_results.txt"), "w")
    print(f"echo: {len(chosen)} servers x {len(ROWS)} rows x {ROUNDS} rounds of {WARMUP:g}+{SECONDS:g} s,"
          " the servers taking turns"
          + (f"; then {IDLE} idle connections each" if IDLE else "")
          + ("; servers on CPU 0, load on CPU 1" if PIN_SERVER else ""))

    def failed(server, e):
        failures.append(f"{server.name}: FAILED: {e}")
        print(f"  {server.name:<20} FAILED: {e}")
        server.stop(quiet=True)

    # Every server is up at once (an idle one waits in epoll and costs
    # nothing), and each row runs in rounds in which every server takes a
    # turn, in alternate orders: a machine that slows down for a while
    # slows all of them, and ratios are taken within a round.
    running = []
    for name, _style, argv in chosen:
        server = Server(name, argv)
        try:
            server.start()
            running.append(server)
        except Skip as e:
            skipped.append(f"{name}: skipped: {e}")
            print(f"  {name:<20} skipped: {e}")
        except Failed as e:
            failed(server, e)
    ran = [server.name for server in running]
    try:
        for conns, size in ROWS:
            row = row_name(conns, size)
            rounds = {server.name: [] for server in running}
            for turn in range(ROUNDS):
                for server in (running if turn % 2 == 0 else running[::-1]):
                    if server.proc is None:
                        continue
                    try:
                        r = run_row(server, conns, size)
                    except Failed as e:
                        failed(server, e)
                        continue
                    r["turn"] = turn
                    rounds[server.name].append(r)
                    raw.write(f"{server.tag} {row} round={turn + 1} {r['line']}"
                              f" cpu_us_per_msg={r['cpu_us']:.3f} other_cpus={r['other']:.3f}\n")
            for server in running:
                runs = rounds[server.name]
                if server.proc is None or not runs:
                    continue
                r = {key: statistics.median(x[key] for x in runs)
                     for key in ("rate", "cpu_us", "p50", "p99", "other")}
                r["rates"] = [x["rate"] for x in runs]
                r["by_turn"] = {x["turn"]: x for x in runs}
                results[(server.name, row)] = r
                print(f"  {server.name:<20} {row:<9} {si(r['rate']):>9} msgs/s {r['cpu_us']:8.2f} us cpu/msg"
                      f"  p50 {r['p50']:.1f} us  p99 {r['p99']:.1f} us  other {r['other']:.2f} CPU"
                      f"  rounds: {' '.join(si(x) for x in r['rates'])}")
    finally:
        for server in running:
            if server.proc is not None:
                notes.append(server.stop())
    if IDLE:
        for server in running:
            if not any(key[0] == server.name for key in results):
                continue
            # A fresh server: what the rows allocated is not in its "before".
            try:
                server.start()
                m = run_idle(server)
                idle[server.name] = m
                raw.write(f"{server.tag} idle {m['line']} rss_before={m['before']}"
                          f" rss_after={m['after']}\n")
                print(f"  {server.name:<20} {'idle':<9} {m['opened']:>9} conns   RSS +"
                      f"{(m['after'] - m['before']) / 2**20:.1f} MiB")
                notes.append(server.stop())
            except Failed as e:
                failed(server, e)
            finally:
                server.stop(quiet=True)
    raw.close()

    print_table(ran, styles, results)
    print_memory(ran, styles, idle)
    for line in skipped + [n for n in notes if n] + failures:
        print(line)
    print(f"echo: raw lines in bench/bin/echo_results.txt; {time.monotonic() - start:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    exit_on_termination()
    try:
        rc = main()
    finally:
        kill_all()
    sys.exit(rc)
