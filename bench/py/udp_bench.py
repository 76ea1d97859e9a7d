"""The UDP ping-pong benchmark: datagram echo servers on raw libuv,
libaio-swift's C datagram API, asyncio and uvloop, under one load client.

    python3 bench/py/udp_bench.py

Builds bench/bin/udp_uv (raw libuv server and the load client) and
bench/bin/udp_aios (cc -O2, the library through pkg-config from
$BUILD/lib/pkgconfig, BUILD=build by default), installs uvloop with pip if
it cannot be imported, then runs each server REPEATS times, the servers
interleaved, and prints the best run of each (highest rate) with its ratios.

Each run: a fresh server on 127.0.0.1, port 0, pinned to CPU 0 (taskset
-c 0), prints `port P`; the load client (`udp_uv client`, a blocking
connected socket, no event loop), pinned to CPU 1, keeps exactly one 64-byte
datagram in flight: send, wait for the echo, check it byte for byte, send
the next. WARMUP seconds are not counted, then SECONDS are (a fixed
duration, not a fixed count: the servers differ 2-3x in rate). A datagram
whose echo does not come within TIMEOUT_MS is sent again and counted as
lost. Then SIGTERM: the server closes its endpoint and loop and prints
`served S errors=E`; its count must equal what the client sent when
nothing was lost.

Figures: round trips/s, the server's CPU time per round trip (utime + stime
of /proc/PID/stat over the counted part, read by the client; 10 ms ticks),
p50/p99 round trip, lost datagrams, and other = CPUs the rest of the machine
kept busy meanwhile (a noisy run says more about the machine). Ratios of
the aios C row: rate = ours / the reference's, cpu = ours per round trip /
the reference's (below 1 is cheaper). Targets are printed, never enforced.

Knobs (environment): BENCH_REPEATS=3, BENCH_UDP_SECONDS=3 (counted seconds
per run), BENCH_UDP_WARMUP=0.5, BENCH_UDP_TIMEOUT_MS=200 (resend after),
BENCH_UDP_PIN=1 (0: no taskset; shared: server and client both on CPU 0,
where a round trip is the two processes' CPU time and no cross-CPU wake-up),
BENCH_UDP_RUN_TIMEOUT=60 (seconds per client), BUILD=build, CC=cc. Raw lines: bench/bin/udp_results.txt. Exit
status 1 when a server or the client failed (a library call returned an
error, a check did not hold, a timeout).

Internally the Python servers run as
    udp_bench.py --server --loop=asyncio|uvloop [PORT]
"""
import asyncio
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness import LIVE, Failed, Skip, kill_all, spawn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bench", "bin")
UV = os.path.join(BIN, "udp_uv")
AIOS = os.path.join(BIN, "udp_aios")
SELF = [sys.executable, os.path.abspath(__file__)]


def env_num(name, default, kind=int):
    return kind(os.environ.get(name, str(default)))


REPEATS = env_num("BENCH_REPEATS", 3)
SECONDS = env_num("BENCH_UDP_SECONDS", 3, float)
WARMUP = env_num("BENCH_UDP_WARMUP", 0.5, float)
TIMEOUT_MS = env_num("BENCH_UDP_TIMEOUT_MS", 200)
RUN_TIMEOUT = env_num("BENCH_UDP_RUN_TIMEOUT", 60)
READY_SECONDS = 5
SKIP_STATUS = 77
SIZE = 64
NOISY = 0.15
OURS = "aios C"
# The servers: name, command line (the harness appends the port, 0).
SERVERS = [
    ("raw libuv", [UV, "server"]),
    (OURS, [AIOS]),
    ("asyncio", SELF + ["--server", "--loop=asyncio"]),
    ("uvloop", SELF + ["--server", "--loop=uvloop"]),
]
TARGETS = {"raw libuv": (0.9, ">="), "asyncio": (1.0, ">"), "uvloop": (1.0, ">")}


# ------------------------------------------------------------ the server

class Echo(asyncio.DatagramProtocol):
    def __init__(self, closed):
        self.closed = closed
        self.served = self.errors = 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)
        self.served += 1

    def error_received(self, exc):
        print(f"error_received: {exc!r}", file=sys.stderr)
        self.errors += 1

    def connection_lost(self, exc):
        if exc is not None:
            print(f"connection_lost: {exc!r}", file=sys.stderr)
            self.errors += 1
        self.closed.set_result(None)


async def serve(port):
    loop = asyncio.get_running_loop()
    stop, closed = loop.create_future(), loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    transport, echo = await loop.create_datagram_endpoint(lambda: Echo(closed), local_addr=("127.0.0.1", port),
                                                          family=socket.AF_INET)
    print(f"port {transport.get_extra_info('sockname')[1]}", flush=True)
    await stop
    transport.close()
    await closed
    print(f"served {echo.served} errors={echo.errors}")
    return 1 if echo.errors else 0


def server(argv):
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    words = [a for a in argv if not a.startswith("--")]
    name = opts.get("loop", "asyncio")
    if name == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop cannot be imported", file=sys.stderr)
            return SKIP_STATUS
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import make_loop
    loop = make_loop(name)
    try:
        return loop.run_until_complete(serve(int(words[0]) if words else 0))
    finally:
        loop.close()


# ------------------------------------------------------------ the harness

def build():
    """Compiles the two C programs into bench/bin; the problems met."""
    os.makedirs(BIN, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    build_dir = os.path.join(ROOT, os.environ.get("BUILD", "build"))
    env = dict(os.environ)
    pc = os.path.join(build_dir, "lib", "pkgconfig")
    env["PKG_CONFIG_PATH"] = pc + (":" + env["PKG_CONFIG_PATH"] if env.get("PKG_CONFIG_PATH") else "")
    problems = []
    for out, src, pkg, extra in (
            (UV, "bench/c/udp_uv.c", "libuv", []),
            (AIOS, "bench/c/udp_aios.c", "aio-swift", ["-Wl,-rpath," + os.path.join(build_dir, "lib")])):
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", pkg], env=env, capture_output=True, text=True)
        if flags.returncode != 0:
            problems.append(f"compiling {src}: pkg-config {pkg}: {flags.stderr.strip()}")
            continue
        cmd = [cc, "-O2", "-std=gnu11", "-Wall", "-Wextra", "-o", out, os.path.join(ROOT, src)]
        r = subprocess.run(cmd + flags.stdout.split() + extra, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"compiling {src} failed: {r.stderr.strip()[-300:]}")
    return problems


def ensure_uvloop():
    """True when the servers' interpreter can import uvloop (pip installs it if not)."""
    def importable():
        return subprocess.run([sys.executable, "-c", "import uvloop"], capture_output=True).returncode == 0
    if importable():
        return True
    print("udp: installing uvloop with pip")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "uvloop"], capture_output=True)
    return importable()


def pinning():
    """The taskset prefixes (server, client) and a sentence saying so."""
    mode = os.environ.get("BENCH_UDP_PIN", "1")
    if mode == "0":
        return [], [], "not pinned (BENCH_UDP_PIN=0)"
    if mode == "shared" and shutil.which("taskset") and 0 in os.sched_getaffinity(0):
        return ["taskset", "-c", "0"], ["taskset", "-c", "0"], "server and client share CPU 0"
    if mode != "shared" and shutil.which("taskset") and {0, 1} <= os.sched_getaffinity(0):
        return ["taskset", "-c", "0"], ["taskset", "-c", "1"], "server on CPU 0, client on CPU 1"
    return [], [], "not pinned (no taskset, or CPUs 0 and 1 not both available)"


def fields(line):
    words = line.split()
    return dict(w.split("=", 1) for w in words if "=" in w), words


def read_port(proc, deadline):
    """The port from the server's first line, or raises."""
    buf = b""
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failed(f"no `port` line within {READY_SECONDS} s")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode(errors="replace").split()
    if len(line) == 2 and line[0] == "port" and line[1].isdigit():
        return int(line[1])
    rc = proc.wait()
    if rc == SKIP_STATUS:
        raise Skip("exited with status 77")
    raise Failed(f"exited with status {rc} before it was ready")


def stop(proc, grace=5.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise Failed(f"did not exit within {grace} s of SIGTERM")
    LIVE.discard(proc)
    return proc.returncode


def tail(f):
    f.seek(0)
    return " ".join(f.read().decode(errors="replace").strip().splitlines()[-3:])[:300]


def run_one(cmd, pin_server, pin_client):
    """One server, one client run: the figures, or raises Failed / Skip."""
    with tempfile.TemporaryFile() as err:
        proc = spawn(pin_server + cmd + ["0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        try:
            try:
                port = read_port(proc, time.monotonic() + READY_SECONDS)
            except Failed as e:
                raise Failed(f"server: {e}: {tail(err)}") from None
            client = [UV, "client", str(port), str(SECONDS), str(WARMUP), str(proc.pid), str(TIMEOUT_MS)]
            try:
                r = subprocess.run(pin_client + client, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise Failed(f"client timed out after {RUN_TIMEOUT} s") from None
            if r.returncode != 0 or not r.stdout.strip():
                why = " ".join(r.stderr.strip().splitlines()[-3:])[:300]
                raise Failed(f"client exit {r.returncode}: {why}; server: {tail(err)}")
            line = r.stdout.strip().splitlines()[-1]
            try:
                rc = stop(proc)
            except Failed as e:
                raise Failed(f"server: {e}") from None
            out = proc.stdout.read().decode(errors="replace").strip().splitlines()
            if rc != 0:
                raise Failed(f"server exit {rc}: {tail(err)}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            LIVE.discard(proc)
            proc.stdout.close()
        res, words = fields(line)
        res.update(line=line, n=int(words[1]), seconds=float(words[2]))
        served = [w for w in out if w.startswith("served ")]
        if not served:
            raise Failed(f"server printed no `served` line: {tail(err)}")
        sf, sw = fields(served[-1])
        res["served"], res["leaks"] = int(sw[1]), int(sf.get("leaks", "0"))
        lost, sent = int(res["lost"]), int(res["sent"])
        # A datagram lost on the way in is not served; without losses every one is.
        if res["served"] > sent or (lost == 0 and res["served"] != sent):
            raise Failed(f"the server echoed {res['served']} datagrams, the client sent {sent} ({lost} lost)")
        notes = []
        if res["leaks"]:
            notes.append(f"leaks: {tail(err)}")
        elif tail(err):
            notes.append(f"stderr: {tail(err)}")
        res["note"] = "; ".join(notes)
        return res


def stats(r):
    n = r["n"]
    return {"rate": n / r["seconds"], "cpu": float(r["server_cpu"]) / n * 1e6, "p50": float(r["p50_us"]),
            "p99": float(r["p99_us"]), "lost": int(r["lost"]), "other": float(r["other_cpus"]),
            "client": float(r["client_cpu"]) / n * 1e6}


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--server":
        return server(sys.argv[2:])
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    start = time.monotonic()
    problems = build()
    for p in problems:
        print(f"udp: {p}")
    uvloop = ensure_uvloop()
    pin_server, pin_client, pin_text = pinning()
    servers = [s for s in SERVERS if uvloop or s[0] != "uvloop"]
    print(f"udp: {REPEATS} runs of each, servers interleaved; {pin_text}; {WARMUP:g} s warm-up, {SECONDS:g} s counted"
          + ("" if uvloop else "; uvloop not importable: no uvloop figures"))
    best, failed, skipped = {}, {}, {}
    raw = open(os.path.join(BIN, "udp_results.txt"), "w")
    try:
        for rep in range(1, REPEATS + 1):
            print(f"-- run {rep}/{REPEATS}")
            for name, cmd in servers:
                if name in failed or name in skipped:
                    continue
                if not os.access(cmd[0], os.X_OK) or not os.access(UV, os.X_OK):
                    failed[name] = f"{cmd[0] if not os.access(cmd[0], os.X_OK) else UV} was not built"
                    continue
                try:
                    res = run_one(cmd, pin_server, pin_client)
                except Skip as e:
                    skipped[name] = str(e)
                    print(f"  {name:<10} skipped: {e}")
                    continue
                except Failed as e:
                    failed[name] = str(e)
                    raw.write(f"{name.replace(' ', '_')} FAILED {e}\n")
                    print(f"  {name:<10} FAILED {e}")
                    continue
                raw.write(f"{name.replace(' ', '_')} {res['line']} served={res['served']}\n")
                print(f"  {name:<10} {res['line']}")
                if name not in best or stats(res)["rate"] > stats(best[name])["rate"]:
                    best[name] = res
    finally:
        raw.close()
        kill_all()

    print(f"\n== UDP ping-pong on 127.0.0.1: {SIZE}-byte datagrams, one in flight; best of {REPEATS}"
          f" ({SECONDS:g} s counted each); {pin_text}")
    print("   cpu: the server's user+system time per round trip; client: the load client's; other: CPUs busy"
          f" elsewhere meanwhile (! above {NOISY:g})")
    refs = [n for n in ("raw libuv", "asyncio", "uvloop") if any(s[0] == n for s in servers)]
    head = (f"{'server':<10} {'rt/s':>9} {'cpu us/rt':>9} {'client':>6} {'p50 us':>7} {'p99 us':>7}"
            f" {'lost':>4} {'other':>6}")
    for ref in refs:
        head += f" | {ref:>9} rate   cpu"
    print(head)
    print("-" * len(head))
    for name, _ in servers:
        if name in failed:
            print(f"{name:<10} FAILED: {failed[name]}")
            continue
        if name in skipped:
            print(f"{name:<10} skipped: {skipped[name]}")
            continue
        s = stats(best[name])
        mark = "!" if s["other"] > NOISY else " "
        line = (f"{name:<10} {s['rate']:>9.0f} {s['cpu']:>9.2f} {s['client']:>6.2f} {s['p50']:>7.1f}"
                f" {s['p99']:>7.1f} {s['lost']:>4} {s['other']:>5.2f}{mark}")
        for ref in refs:
            r = best.get(ref)
            if r is None or ref == name:
                line += f" | {'-':>14} {'-':>5}"
            else:
                t = stats(r)
                line += f" | {ratio(s['rate'], t['rate']):>14} {ratio(s['cpu'], t['cpu']):>5}"
        print(line)
        if best[name]["note"]:
            print(f"{'':<10} note: {best[name]['note']}")
    if OURS in best:
        parts = []
        for ref, (target, op) in TARGETS.items():
            if ref in best:
                got = stats(best[OURS])["rate"] / stats(best[ref])["rate"]
                met = got >= target if op == ">=" else got > target
                parts.append(f"{got:.2f}x {ref} (target {op} {target:g}x: {'met' if met else 'BELOW'})")
        print(f"  {OURS} rate: " + ", ".join(parts))
    print(f"\nudp: raw lines in bench/bin/udp_results.txt; {time.monotonic() - start:.0f} s")
    return 1 if problems or failed else 0


if __name__ == "__main__":
    sys.exit(main())
