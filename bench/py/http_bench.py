"""The HTTP benchmark: a real framework's server under wrk, on the stock
asyncio loop, uvloop and aioswift (the Python binding, bindings/python)
side by side.

    python3 bench/py/http_bench.py

The server is aiohttp's `web` with one GET handler answering "Hello, World!"
in plain text (BENCH_HTTP_FRAMEWORKS="aiohttp uvicorn" adds uvicorn with a
raw ASGI app giving the same answer), run by asyncio.Runner with each loop's
new_event_loop as its loop_factory. The load is wrk (1 thread, keep-alive
connections, as many requests in flight as connections) against
http://127.0.0.1:PORT/. The server runs pinned to CPU 0 (taskset -c 0), wrk
to CPU 1 (BENCH_HTTP_PIN=0: neither).

What it lacks it installs, as bench/run.sh does for uvloop: aiohttp (and
uvicorn, httptools when asked for) and uvloop with pip, wrk with apt-get
when running as root; the aioswift binding is built in place for this
interpreter (`make -C bindings/python build`, its two C extensions) when it
cannot be imported. Without aiohttp or wrk it prints `http: skipped: ...` and
exits 0; without uvloop or aioswift their rows are left out, and it says so.

Each run: a fresh server per loop (loops interleaved, REPEATS runs), which
binds port 0 and prints the port it got. Before anything is timed, one GET
must answer status 200, text/plain and the body exactly; then wrk runs
WARMUP seconds uncounted at the largest row, then each row of CONNECTIONS
for SECONDS, and the same GET is checked again after the last. At SIGTERM
the server closes and prints how many requests its handler answered, which
must be at least what wrk counted. wrk's socket errors (connect, read,
write, timeout) or non-2xx/3xx answers, a wrong answer, a server that died
or did not stop make that loop's row FAILED (and the exit status 1).

Figures per row: requests/s (wrk's count over its time), the server's CPU
time per request (its threads' run time from /proc/PID/task/*/schedstat
before and after the wrk run, in nanoseconds), wrk's latency p50 and p99, and
`other`, the CPUs the rest of the machine kept busy meanwhile (busy time of
/proc/stat less the server's and wrk's; ! above 0.15: a shared machine, the
rate says more about it than about the loop). The best run of each (highest
rate) is shown, with each loop's ratios to the stock loop and to uvloop
(aioswift/stock, aioswift/uvloop, uvloop/stock): rate = requests/s over the
reference's, cpu = CPU per request over the reference's (below 1 is
cheaper). No targets.

Knobs (environment): BENCH_REPEATS=3, BENCH_HTTP_SECONDS=5 (counted seconds
per row, whole seconds: wrk's -d), BENCH_HTTP_WARMUP=1 (0: none),
BENCH_HTTP_CONNECTIONS="10 100" (the rows), BENCH_HTTP_THREADS=1 (wrk's),
BENCH_HTTP_FRAMEWORKS=aiohttp, BENCH_HTTP_LOOPS="asyncio uvloop aioswift",
BENCH_HTTP_PIN=1, BUILD=<repo>/build (the library the binding is built
against). About 105 s with the defaults. Raw lines:
bench/bin/http_results.txt.

Internally the servers run as
    http_bench.py --server --loop=asyncio|uvloop|aioswift --framework=aiohttp|uvicorn
"""
import asyncio
import http.client
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import LIVE, Failed, Skip, exit_on_termination, kill_all, spawn
from procstat import busy_seconds, cpu_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bench", "bin")
BINDING = os.path.join(ROOT, "bindings", "python")
SELF = [sys.executable, os.path.abspath(__file__)]

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
SECONDS = int(os.environ.get("BENCH_HTTP_SECONDS", "5"))
WARMUP = int(os.environ.get("BENCH_HTTP_WARMUP", "1"))
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_HTTP_CONNECTIONS", "10 100").split()]
THREADS = int(os.environ.get("BENCH_HTTP_THREADS", "1"))
FRAMEWORKS = os.environ.get("BENCH_HTTP_FRAMEWORKS", "aiohttp").split()
LOOPS = os.environ.get("BENCH_HTTP_LOOPS", "asyncio uvloop aioswift").split()
HOST = "127.0.0.1"
BODY = b"Hello, World!"
READY_SECONDS = 10  # importing aiohttp on a busy machine takes a while
STOP_SECONDS = 5
SKIP_STATUS = 77
NOISY = 0.15
OURS = "aioswift"
# The Python packages each framework needs (pip's names, import names).
PACKAGES = {"aiohttp": [("aiohttp", "aiohttp")],
            "uvicorn": [("uvicorn", "uvicorn"), ("httptools", "httptools")]}


# ------------------------------------------------------------ the servers

def new_loop_factory(name):
    """The new_event_loop of the named loop, or exits with SKIP_STATUS."""
    if name == "asyncio":
        return asyncio.new_event_loop
    try:
        if name == "uvloop":
            import uvloop
            return uvloop.new_event_loop
        if name == "aioswift":
            sys.path.insert(0, BINDING)
            import aioswift
            return aioswift.new_event_loop
    except ImportError as e:
        print(f"{name} cannot be imported: {e}", file=sys.stderr)
        sys.exit(SKIP_STATUS)
    sys.exit(f"unknown loop {name!r} (want asyncio, uvloop or aioswift)")


def on_sigterm(loop, stop):
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))


async def serve_aiohttp():
    from aiohttp import web
    served = 0

    async def hello(request):
        nonlocal served
        served += 1
        return web.Response(text=BODY.decode())

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    on_sigterm(loop, stop)
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, backlog=1024)
    await site.start()
    print(f"port {runner.addresses[0][1]}", flush=True)
    await stop
    await runner.cleanup()
    return served


async def serve_uvicorn():
    import uvicorn
    served = 0
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(BODY)).encode())]

    async def app(scope, receive, send):
        nonlocal served
        assert scope["type"] == "http"  # lifespan="off"
        served += 1
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})

    # Server.serve() takes SIGTERM and SIGINT with signal.signal while it
    # runs and raises them again once it has shut down: let that be a no-op.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    config = uvicorn.Config(app, host=HOST, port=0, loop="none", http="httptools", lifespan="off",
                            access_log=False, log_level="warning", backlog=1024)
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
            sys.exit("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    print(f"port {server.servers[0].sockets[0].getsockname()[1]}", flush=True)
    await task
    return served


def server(argv):
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    factory = new_loop_factory(opts.get("loop", "asyncio"))
    framework = opts.get("framework", "aiohttp")
    serve = {"aiohttp": serve_aiohttp, "uvicorn": serve_uvicorn}[framework]
    with asyncio.Runner(loop_factory=factory) as runner:
        served = runner.run(serve())
    print(f"served {served}", flush=True)
    return 0


# ------------------------------------------------------------ the harness

def importable(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def ensure_packages(what, packages):
    """pip installs the (pip name, module) pairs that cannot be imported; the
    modules still missing afterwards."""
    lacking = [(p, m) for p, m in packages if not importable(m)]
    if lacking:
        names = [p for p, _ in lacking]
        print(f"http: installing {' '.join(names)} with pip ({what})")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q"] + names, capture_output=True)
    return [m for _, m in lacking if not importable(m)]


def ensure_wrk():
    """The path of wrk, installed with apt-get when missing and running as root; or None."""
    if shutil.which("wrk") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("http: installing wrk with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True, env=env)
    return shutil.which("wrk")


def ensure_aioswift():
    """None when the servers' interpreter can import aioswift (building the
    binding's extensions in place for it if needed); else why not."""
    check = f"import sys; sys.path.insert(0, {BINDING!r}); import aioswift"
    if subprocess.run([sys.executable, "-c", check], capture_output=True).returncode == 0:
        return None
    build = os.environ.get("BUILD", os.path.join(ROOT, "build"))
    build = build if os.path.isabs(build) else os.path.join(ROOT, build)
    if not os.path.exists(os.path.join(build, "lib", "libaio-swift.so")):
        return f"{build}/lib/libaio-swift.so is missing (run make)"
    print(f"http: building the aioswift binding for {sys.executable}")
    r = subprocess.run(["make", "--no-print-directory", "-s", "-C", BINDING, "build", f"BUILD={build}",
                        f"PYTHON={sys.executable}"], capture_output=True, text=True)
    if r.returncode != 0:
        return "building bindings/python failed: " + " ".join((r.stdout + r.stderr).strip().splitlines()[-2:])
    r = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    if r.returncode != 0:
        return "cannot be imported: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


def pinning():
    """The taskset prefixes (server, wrk) and a sentence saying so."""
    if os.environ.get("BENCH_HTTP_PIN", "1") == "0":
        return [], [], "not pinned (BENCH_HTTP_PIN=0)"
    if shutil.which("taskset") and {0, 1} <= os.sched_getaffinity(0):
        return ["taskset", "-c", "0"], ["taskset", "-c", "1"], "server on CPU 0, wrk on CPU 1"
    return [], [], "not pinned (no taskset, or CPUs 0 and 1 not both available)"


def tail(f, n=3):
    f.seek(0)
    return " ".join(f.read().decode(errors="replace").strip().splitlines()[-n:])[-400:]


def said(f):
    text = tail(f)
    return f": {text}" if text else ""


def read_line(proc, deadline, what):
    """The server's next line on stdout, or None at its end."""
    buf = b""
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failed(f"no {what} within {READY_SECONDS} s")
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                return buf.decode(errors="replace") or None
            buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace")


def check_answer(port):
    """One GET /: status 200, text/plain, the body; raises Failed if not."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read()
        ctype = resp.getheader("Content-Type", "")
    except (OSError, http.client.HTTPException) as e:
        raise Failed(f"GET / failed: {e!r}") from None
    finally:
        conn.close()
    if resp.status != 200 or body != BODY or not ctype.startswith("text/plain"):
        raise Failed(f"GET / answered {resp.status} {ctype!r} {body[:60]!r}, not 200 text/plain {BODY!r}")


UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def micros(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out):
    """wrk --latency's report: requests, seconds, p50/p99 (us), errors."""
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", out)
    if not m:
        raise Failed(f"unparsable wrk output: {' '.join(out.split())[:300]}")
    res = {"requests": int(m.group(1)), "seconds": micros(m.group(2) + m.group(3)) / 1e6}
    for pct in ("50", "99"):
        p = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", out, re.M)
        res[f"p{pct}"] = micros(p.group(1)) if p else float("nan")
    errors = []
    s = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if s and any(int(x) for x in s.groups()):
        errors.append(s.group(0))
    n = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if n and int(n.group(1)):
        errors.append(n.group(0))
    res["errors"] = "; ".join(errors)
    return res


def run_wrk(wrk, pin, port, conns, seconds, server_pid, what=""):
    """One wrk run: its figures plus the server's CPU seconds over it."""
    argv = pin + [wrk, "--latency", "-t", str(min(THREADS, conns)), "-c", str(conns),
                  "-d", f"{seconds}s", f"http://{HOST}:{port}/"]
    with tempfile.TemporaryFile() as out:
        srv0, busy0, wall0 = cpu_seconds(server_pid), busy_seconds(), time.monotonic()
        proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + seconds + 15
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                LIVE.discard(proc)
                raise Failed(f"wrk did not end within {seconds + 15} s")
            time.sleep(0.02)
        # Sampled while the server is surely still alive (it is checked next).
        srv1, busy1, wall1 = cpu_seconds(server_pid), busy_seconds(), time.monotonic()
        proc.returncode = os.waitstatus_to_exitcode(status)
        LIVE.discard(proc)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise Failed(f"wrk exit {proc.returncode}: {' '.join(text.split())[-300:]}")
    res = parse_wrk(text)
    if res["errors"]:
        raise Failed(f"wrk{what} at {conns} connections: {res['errors']} (of {res['requests']} requests)")
    if res["requests"] == 0:
        raise Failed(f"wrk{what} at {conns} connections: no request completed")
    srv, wrk_cpu = srv1 - srv0, usage.ru_utime + usage.ru_stime
    wall = wall1 - wall0
    res.update(server_cpu=srv, wrk_cpu=wrk_cpu,
               other=max(busy1 - busy0 - srv - wrk_cpu, 0) / wall if wall > 0 else 0.0)
    return res


def stop(proc):
    """SIGTERM, then what the server printed after its port line, or raises."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            LIVE.discard(proc)
            raise Failed(f"did not exit within {STOP_SECONDS} s of SIGTERM")
    LIVE.discard(proc)
    return proc.stdout.read().decode(errors="replace")


def run_server(framework, loop, wrk, pin_server, pin_wrk):
    """One fresh server, every row: {conns: figures}, or raises Failed / Skip."""
    cmd = pin_server + SELF + ["--server", f"--loop={loop}", f"--framework={framework}"]
    with tempfile.TemporaryFile() as err:
        proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        try:
            line = read_line(proc, time.monotonic() + READY_SECONDS, "`port` line")
            words = (line or "").split()
            if len(words) != 2 or words[0] != "port" or not words[1].isdigit():
                rc = proc.wait()
                LIVE.discard(proc)
                if rc == SKIP_STATUS:
                    raise Skip(tail(err) or "exited with status 77")
                raise Failed(f"server exited with status {rc} before it was ready{said(err)}")
            port = int(words[1])
            answered = 1
            check_answer(port)
            rows = {}
            try:
                if WARMUP:
                    run_wrk(wrk, pin_wrk, port, max(CONNECTIONS), WARMUP, proc.pid, " (warm-up)")
                for conns in CONNECTIONS:
                    rows[conns] = run_wrk(wrk, pin_wrk, port, conns, SECONDS, proc.pid)
                check_answer(port)
                answered += 1
            except Failed as e:
                if proc.poll() is not None:
                    raise Failed(f"{e}; the server exited with status {proc.returncode}{said(err)}") from None
                raise Failed(f"{e}{said(err)}") from None
            try:
                rest = stop(proc)
            except Failed as e:
                raise Failed(f"server: {e}{said(err)}") from None
            if proc.returncode != 0:
                raise Failed(f"server exited with status {proc.returncode} on SIGTERM{said(err)}")
            served = [w.split() for w in rest.splitlines() if w.startswith("served ")]
            if not served:
                raise Failed(f"server printed no `served` line{said(err)}")
            counted = sum(r["requests"] for r in rows.values()) + answered
            if int(served[-1][1]) < counted:
                raise Failed(f"the server answered {served[-1][1]} requests, wrk and the checks counted {counted}")
            note = tail(err)
            for r in rows.values():
                r["note"] = f"stderr: {note}" if note else ""
            return rows
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            LIVE.discard(proc)
            proc.stdout.close()


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


REFS = ("asyncio", "uvloop")


def print_table(framework, loops, best, failed, skipped, pin_text):
    print(f"\n== http: {framework} 'Hello, World!' GET under wrk ({THREADS} thread, keep-alive), best of"
          f" {REPEATS} ({SECONDS} s counted each, after {WARMUP} s of warm-up); {pin_text}")
    print("   cpu/req: the server's run time (schedstat) over the wrk run / its requests. Ratios of each loop to the"
          " stock loop (asyncio) and to uvloop:")
    print(f"   rate = req/s / the reference's, cpu = cpu/req / the reference's (below 1 is cheaper); other:"
          f" CPUs busy elsewhere meanwhile (! above {NOISY:g})")
    refs = [r for r in REFS if r in loops and r not in failed and r not in skipped]
    head = (f"{'loop':<9} {'conns':>5} {'req/s':>8} {'cpu us/req':>10} {'p50 us':>8} {'p99 us':>8}"
            f" {'other':>6}")
    for ref in refs:
        head += f" | {'/' + ref + ' rate':>13} {'cpu':>5}"
    print(head)
    print("-" * len(head))
    for conns in CONNECTIONS:
        for loop in loops:
            if loop in failed or loop in skipped:
                # Once, in the first row.
                if conns == CONNECTIONS[0]:
                    print(f"{loop:<9} {'':>5} " + (f"FAILED: {failed[loop]}" if loop in failed
                                                   else f"skipped: {skipped[loop]}"))
                continue
            r = best.get((loop, conns))
            if r is None:
                continue
            mark = "!" if r["other"] > NOISY else " "
            line = (f"{loop:<9} {conns:>5} {r['rate']:>8.0f} {r['cpu_us']:>10.1f} {r['p50']:>8.0f}"
                    f" {r['p99']:>8.0f} {r['other']:>5.2f}{mark}")
            for ref in refs:
                t = best.get((ref, conns))
                if ref == loop or t is None:
                    line += f" | {'-':>13} {'-':>5}"
                else:
                    line += f" | {ratio(r['rate'], t['rate']):>13} {ratio(r['cpu_us'], t['cpu_us']):>5}"
            print(line)
            if r["note"]:
                print(f"{'':<9} note: {r['note']}")
        print()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--server":
        return server(sys.argv[2:])
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    start = time.monotonic()
    if sys.version_info < (3, 11):
        print(f"http: skipped: asyncio.Runner needs Python 3.11, this is {sys.version.split()[0]}")
        return 0
    wrk = ensure_wrk()
    if wrk is None:
        print("http: skipped: wrk is not installed"
              + ("" if os.geteuid() == 0 else " (apt-get install wrk needs root)")
              + " and could not be installed")
        return 0
    frameworks = []
    for fw in FRAMEWORKS:
        if fw not in PACKAGES:
            sys.exit(f"http: unknown framework {fw!r} in BENCH_HTTP_FRAMEWORKS (want aiohttp or uvicorn)")
        missing = ensure_packages(fw, PACKAGES[fw])
        if missing:
            print(f"http: skipped: {fw}: {', '.join(missing)} cannot be installed with pip")
        else:
            frameworks.append(fw)
    if not frameworks:
        return 0
    loops, skipped = [], {}
    for loop in LOOPS:
        if loop not in ("asyncio", "uvloop", OURS):
            sys.exit(f"http: unknown loop {loop!r} in BENCH_HTTP_LOOPS (want asyncio, uvloop, aioswift)")
        why = None
        if loop == "uvloop" and ensure_packages("uvloop", [("uvloop", "uvloop")]):
            why = "uvloop cannot be installed with pip"
        elif loop == OURS:
            why = ensure_aioswift()
        if why:
            print(f"http: {loop}: no figures: {why}")
            skipped[loop] = why
        loops.append(loop)
    pin_server, pin_wrk, pin_text = pinning()
    versions = subprocess.run(SELF[:1] + ["-c", "import importlib.metadata as m, sys; print(sys.version.split()[0],"
                              + ", ".join(f"'{fw}', m.version('{fw}')" for fw in frameworks) + ")"],
                              capture_output=True, text=True).stdout.strip()
    print(f"http: {', '.join(frameworks)} x {', '.join(loops)} x {len(CONNECTIONS)} rows"
          f" ({'/'.join(map(str, CONNECTIONS))} connections) x {REPEATS} runs of {WARMUP}+{SECONDS} s,"
          f" loops interleaved; {pin_text}; python {versions}")
    os.makedirs(BIN, exist_ok=True)
    status = 0
    raw = open(os.path.join(BIN, "http_results.txt"), "w")
    try:
        for fw in frameworks:
            best, failed, fw_skipped = {}, {}, dict(skipped)
            for rep in range(1, REPEATS + 1):
                print(f"-- {fw}: run {rep}/{REPEATS}")
                for loop in loops:
                    if loop in failed or loop in fw_skipped:
                        continue
                    try:
                        rows = run_server(fw, loop, wrk, pin_server, pin_wrk)
                    except Skip as e:
                        fw_skipped[loop] = str(e)
                        print(f"  {loop:<9} skipped: {e}")
                        continue
                    except Failed as e:
                        failed[loop] = str(e)
                        raw.write(f"{fw} {loop} FAILED {e}\n")
                        print(f"  {loop:<9} FAILED {e}")
                        continue
                    for conns, r in rows.items():
                        r["rate"] = r["requests"] / r["seconds"]
                        r["cpu_us"] = r["server_cpu"] / r["requests"] * 1e6
                        raw.write(f"{fw} {loop} conns={conns} requests={r['requests']} seconds={r['seconds']:.3f}"
                                  f" req_per_s={r['rate']:.0f} server_cpu={r['server_cpu']:.2f}"
                                  f" cpu_us_per_req={r['cpu_us']:.2f} wrk_cpu={r['wrk_cpu']:.2f}"
                                  f" p50_us={r['p50']:.0f} p99_us={r['p99']:.0f} other_cpus={r['other']:.3f}\n")
                        print(f"  {loop:<9} {conns:>4} conns {r['rate']:>8.0f} req/s {r['cpu_us']:>7.1f} us cpu/req"
                              f"  p50 {r['p50']:.0f} us  p99 {r['p99']:.0f} us  other {r['other']:.2f} CPU")
                        if (loop, conns) not in best or r["rate"] > best[(loop, conns)]["rate"]:
                            best[(loop, conns)] = r
                    raw.flush()
            print_table(fw, loops, best, failed, fw_skipped, pin_text)
            status |= 1 if failed else 0
    finally:
        raw.close()
        kill_all()
    print(f"http: raw lines in bench/bin/http_results.txt; {time.monotonic() - start:.0f} s")
    return status


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "--server":
        exit_on_termination()
    sys.exit(main())
