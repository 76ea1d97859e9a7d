"""The subprocess benchmark: child processes through raw libuv, libaio-swift's
C API, asyncio and uvloop, side by side.

    python3 bench/py/subprocess_bench.py

Builds bench/bin/spawn_uv and bench/bin/spawn_aios (cc -O2, the library
through pkg-config from $BUILD/lib/pkgconfig, BUILD=build by default), then
runs each case REPEATS times, the implementations interleaved, and prints the
best run of each with its ratios:

- spawn: SPAWN_N children of /bin/true started and waited for, one after the
  other (seq) and with INFLIGHT in flight at once; fds 0-2 inherited.
- cat: BYTES through one /bin/cat, written to its stdin in 64 KiB chunks
  while its stdout is read, both at once; the bytes read are counted and
  must be the bytes written.

Each implementation comes in two styles: "process" (create_subprocess_exec,
stream writes with drain, stream reads of 65536, wait()) and "protocol"
(subprocess_exec with a SubprocessProtocol: pipe_data_received, writes to
the stdin pipe transport under pause/resume_writing). Raw libuv's cat runs
with UV_CREATE_PIPE ("raw libuv": libuv 1.44 gives the child socket pairs,
as uvloop does) and with pipe2 pipes ("raw libuv pipe2": the kernel objects
asyncio and libaio-swift use by default, which cost parent and child more
here). The libaio-swift rows run twice for cat: on pipes ("aios C process",
compared with raw libuv pipe2 for the target) and on socket pairs
(aios_spawn_options_t.socket_pairs, "aios C process sp", compared with raw
libuv). Each process runs one untimed warm-up round
(cat: min(BYTES, 64 MiB)) before the timed one.

Figures: wall time, spawns/s or MB/s (10^6 bytes), the parent's CPU time
(getrusage RUSAGE_SELF, user + system) and its children's (RUSAGE_CHILDREN)
per spawn or per MB. Ratios: rate = the row's rate / the reference's, cpu =
the row's parent CPU / the reference's (below 1 is cheaper); the asyncio and
uvloop references are of the row's style. Targets are printed, never
enforced. The parent is pinned to CPU 0 (taskset -c 0) and its children
inherit that mask: parent and children share one CPU, so wall time is close
to their CPU times added up.

Knobs (environment): BENCH_REPEATS=3, BENCH_SUBPROCESS_N=300,
BENCH_SUBPROCESS_INFLIGHT=50, BENCH_CAT_BYTES=1073741824,
BENCH_SUBPROCESS_PIN=1 (0: no taskset), BENCH_SUBPROCESS_MALLOC=1 (0: cat
runs without the fixed malloc thresholds, see CAT_ENV),
BENCH_SUBPROCESS_TIMEOUT=120 (seconds per process), BUILD=build, CC=cc. Raw lines: bench/bin/subprocess_results.txt. Exit
status 1 when an implementation failed (a library call returned an error,
a check did not hold, a timeout).

Internally the Python references run as
    subprocess_bench.py --worker spawn|cat COUNT [INFLIGHT] --loop=L --api=A [-- ARGV...]
"""
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bench", "bin")
UV = os.path.join(BIN, "spawn_uv")
AIOS = os.path.join(BIN, "spawn_aios")
SELF = [sys.executable, os.path.abspath(__file__)]

CHUNK = 64 * 1024
WARMUP_BYTES = 64 * 1024 * 1024
TRUE = "/bin/true"
CAT = "/bin/cat"


def env_int(name, default):
    return int(os.environ.get(name, str(default)))


REPEATS = env_int("BENCH_REPEATS", 3)
SPAWN_N = env_int("BENCH_SUBPROCESS_N", 300)
INFLIGHT = env_int("BENCH_SUBPROCESS_INFLIGHT", 50)
CAT_BYTES = env_int("BENCH_CAT_BYTES", 1 << 30)
TIMEOUT = env_int("BENCH_SUBPROCESS_TIMEOUT", 120)
# Python allocates 64-256 KiB per pipe read (asyncio's os.read of up to
# 256 KiB, a StreamReader's buffer): with its dynamic thresholds glibc's
# malloc then gives back and takes again the top of the heap on nearly every
# read, or never, depending on where the heap happens to end (300k page
# faults per GiB, 2-2.5x the CPU time). Fixed thresholds keep every run in
# the fast mode; the C programs do not change with them.
CAT_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
MALLOC_FIX = os.environ.get("BENCH_SUBPROCESS_MALLOC", "1") != "0"
TARGETS = {"spawn": {"raw libuv": 0.9, "asyncio": 1.2}, "cat": {"raw libuv": 0.8}}


# ------------------------------------------------------------ the worker

def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


async def spawn_process(n, inflight, argv):
    started = 0

    async def worker():
        nonlocal started
        while started < n:
            started += 1
            proc = await asyncio.create_subprocess_exec(*argv)
            rc = await proc.wait()
            if rc != 0:
                raise RuntimeError(f"returncode {rc}")

    await asyncio.gather(*(worker() for _ in range(inflight)))
    return started


class ExitProtocol(asyncio.SubprocessProtocol):
    def __init__(self, done):
        self.done = done
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        rc = self.transport.get_returncode()
        self.transport.close()
        if exc is not None or rc != 0:
            self.done.set_exception(RuntimeError(f"returncode {rc}, {exc!r}"))
        else:
            self.done.set_result(None)


async def spawn_protocol(n, inflight, argv):
    loop = asyncio.get_running_loop()
    started = 0

    async def worker():
        nonlocal started
        while started < n:
            started += 1
            done = loop.create_future()
            await loop.subprocess_exec(lambda: ExitProtocol(done), *argv,
                                       stdin=None, stdout=None, stderr=None)
            await done

    await asyncio.gather(*(worker() for _ in range(inflight)))
    return started


async def cat_process(total, argv):
    proc = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    chunk = b"x" * CHUNK

    async def feed():
        sent = 0
        while sent < total:
            piece = chunk if total - sent >= CHUNK else chunk[:total - sent]
            proc.stdin.write(piece)
            await proc.stdin.drain()
            sent += len(piece)
        proc.stdin.close()

    async def eat():
        got = 0
        while True:
            data = await proc.stdout.read(CHUNK)
            if not data:
                return got
            got += len(data)

    _, got = await asyncio.gather(feed(), eat())
    rc = await proc.wait()
    if rc != 0:
        raise RuntimeError(f"returncode {rc}")
    return got


class CatProtocol(asyncio.SubprocessProtocol):
    def __init__(self, total, done):
        self.total, self.done = total, done
        self.sent = self.received = 0
        self.paused = self.close_scheduled = False
        self.chunk = b"x" * CHUNK

    def connection_made(self, transport):
        self.transport = transport
        self.stdin = transport.get_pipe_transport(0)
        self.pump()

    def pump(self):
        while not self.paused and self.sent < self.total:
            left = self.total - self.sent
            piece = self.chunk if left >= CHUNK else self.chunk[:left]
            self.stdin.write(piece)
            self.sent += len(piece)
        if self.sent == self.total and not self.close_scheduled:
            # Not from inside resume_writing: _UnixWritePipeTransport's
            # _write_ready then drops what this call buffered (3.11).
            self.close_scheduled = True
            asyncio.get_running_loop().call_soon(self.stdin.close)

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        self.pump()

    def pipe_data_received(self, fd, data):
        self.received += len(data)

    def connection_lost(self, exc):
        rc = self.transport.get_returncode()
        self.transport.close()
        if exc is not None or rc != 0:
            self.done.set_exception(RuntimeError(f"returncode {rc}, {exc!r}"))
        else:
            self.done.set_result(self.received)


async def cat_protocol(total, argv):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    await loop.subprocess_exec(lambda: CatProtocol(total, done), *argv,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)
    return await done


def worker(argv):
    """--worker spawn N INFLIGHT | cat BYTES, --loop=, --api=, [-- ARGV]: one line."""
    child = None
    if "--" in argv:
        child = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    words = [a for a in argv if not a.startswith("--")]
    loop_name, api = opts.get("loop", "asyncio"), opts.get("api", "process")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import make_loop
    loop = make_loop(loop_name)
    try:
        if words[0] == "spawn":
            n, inflight = int(words[1]), int(words[2])
            body = spawn_process if api == "process" else spawn_protocol
            child = child or [TRUE]
            loop.run_until_complete(body(n, inflight, child))
            s0, k0, t0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
            done = loop.run_until_complete(body(n, inflight, child))
            t1, s1, k1 = time.perf_counter(), cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
            if done != n:
                sys.exit(f"started {done} children, expected {n}")
            print(f"spawn {n} {t1 - t0:.6f} inflight={inflight} api={api} self_cpu={s1 - s0:.6f}"
                  f" child_cpu={k1 - k0:.6f} impl={loop_name}")
        else:
            total = int(words[1])
            body = cat_process if api == "process" else cat_protocol
            child = child or [CAT]
            warm = min(total, WARMUP_BYTES)
            got = loop.run_until_complete(body(warm, child))
            if got != warm:
                sys.exit(f"received {got} bytes, sent {warm}")
            s0, k0, t0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
            got = loop.run_until_complete(body(total, child))
            t1, s1, k1 = time.perf_counter(), cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
            if got != total:
                sys.exit(f"received {got} bytes, sent {total}")
            print(f"cat {total} {t1 - t0:.6f} api={api} self_cpu={s1 - s0:.6f}"
                  f" child_cpu={k1 - k0:.6f} impl={loop_name}")
    finally:
        loop.close()
    return 0


# ------------------------------------------------------------ the harness

def build():
    """Compiles the two C programs into bench/bin; a message when it cannot."""
    os.makedirs(BIN, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    build_dir = os.path.join(ROOT, os.environ.get("BUILD", "build"))
    env = dict(os.environ)
    pc = os.path.join(build_dir, "lib", "pkgconfig")
    env["PKG_CONFIG_PATH"] = pc + (":" + env["PKG_CONFIG_PATH"] if env.get("PKG_CONFIG_PATH") else "")
    problems = []

    def flags(pkg):
        r = subprocess.run(["pkg-config", "--cflags", "--libs", pkg], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError(f"pkg-config {pkg}: {r.stderr.strip()}")
        return r.stdout.split()

    for out, src, pkg, extra in (
            (UV, "bench/c/spawn_uv.c", "libuv", []),
            (AIOS, "bench/c/spawn_aios.c", "aio-swift", ["-Wl,-rpath," + os.path.join(build_dir, "lib")])):
        try:
            cmd = [cc, "-O2", "-std=gnu11", "-Wall", "-Wextra", "-o", out, os.path.join(ROOT, src)]
            r = subprocess.run(cmd + flags(pkg) + extra, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"compiling {src} failed: {r.stderr.strip()[-300:]}")
        except OSError as e:
            problems.append(f"compiling {src}: {e}")
    return problems


def have_uvloop():
    return subprocess.run([sys.executable, "-c", "import uvloop"], capture_output=True).returncode == 0


def pinning():
    if os.environ.get("BENCH_SUBPROCESS_PIN", "1") == "0":
        return [], "not pinned (BENCH_SUBPROCESS_PIN=0)"
    if shutil.which("taskset") and 0 in os.sched_getaffinity(0):
        return ["taskset", "-c", "0"], "parent on CPU 0 (taskset -c 0); its children inherit CPU 0"
    return [], "not pinned (no taskset or no CPU 0)"


def impls(case, uvloop):
    """(name, style, command) of every implementation of a case ('seq',
    'inflight' or 'cat'); the command is completed by run_case."""
    rows = []
    if case == "cat":
        n = str(CAT_BYTES)
        rows.append(("raw libuv", "ref", [UV, "cat", n, "create"]))
        rows.append(("raw libuv pipe2", "ref", [UV, "cat", n, "pipe2"]))
        for api in ("process", "protocol"):
            rows.append((f"aios C {api}", api, [AIOS, "cat", n, api]))
        # The same on socket pairs (aios_spawn_options_t.socket_pairs), the
        # kernel objects raw libuv's UV_CREATE_PIPE makes.
        for api in ("process", "protocol"):
            rows.append((f"aios C {api} sp", api, [AIOS, "cat", n, f"{api}-socketpairs"]))
        loops = ["asyncio"] + (["uvloop"] if uvloop else [])
        for loop in loops:
            for api in ("process", "protocol"):
                rows.append((f"{loop} {api}", api, SELF + ["--worker", "cat", n, f"--loop={loop}", f"--api={api}"]))
        return rows
    n, k = str(SPAWN_N), "1" if case == "seq" else str(INFLIGHT)
    rows.append(("raw libuv", "ref", [UV, "spawn", n, k]))
    for api in ("process", "protocol"):
        rows.append((f"aios C {api}", api, [AIOS, "spawn", n, k, api]))
    for loop in ["asyncio"] + (["uvloop"] if uvloop else []):
        for api in ("process", "protocol"):
            rows.append((f"{loop} {api}", api,
                         SELF + ["--worker", "spawn", n, k, f"--loop={loop}", f"--api={api}"]))
    return rows


def run_one(pin, cmd, env=None):
    """Runs one benchmark process: its fields, or raises RuntimeError(why)."""
    try:
        r = subprocess.run(pin + cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
                           env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {TIMEOUT}s") from None
    except OSError as e:
        raise RuntimeError(str(e)) from None
    lines = r.stdout.strip().splitlines()
    err = " ".join(r.stderr.strip().splitlines()[-3:])[:300]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"exit {r.returncode}: {err}")
    fields = lines[-1].split()
    res = {"line": lines[-1], "n": int(fields[1]), "seconds": float(fields[2])}
    res.update(f.split("=", 1) for f in fields[3:] if "=" in f)
    if res.get("leaks", "0") != "0":
        res["note"] = err
    return res


def fmt_ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def print_case(case, rows, best, failed):
    spawn = case != "cat"
    if spawn:
        k = 1 if case == "seq" else INFLIGHT
        print(f"\n== spawn+wait {TRUE} x{SPAWN_N}, {'one after another' if k == 1 else f'{k} in flight'}")
        rate_name, cpu_name = "spawns/s", "us/spawn"
    else:
        print(f"\n== {CAT}: {CAT_BYTES} bytes in (64 KiB writes) and out (65536-byte reads) at once")
        print("   raw libuv: UV_CREATE_PIPE (socket pairs, as uvloop's and 'aios C ... sp'); raw libuv pipe2:"
              " pipes, as asyncio's and libaio-swift's by default")
        print("   " + (" ".join(f"{k}={v}" for k, v in CAT_ENV.items()) + " for every process (glibc heap"
                     " trimming, see CAT_ENV)" if MALLOC_FIX else "glibc malloc's default thresholds"))
        rate_name, cpu_name = "MB/s", "us/MB"
    refs = [("raw libuv", None)] + ([("raw libuv pipe2", None)] if not spawn else []) + \
           [("asyncio", True), ("uvloop", True)]
    head = f"{'impl':<17} {'wall s':>8} {rate_name:>9} {'cpu ' + cpu_name:>13} {'child ' + cpu_name:>15}"
    for ref, _ in refs:
        head += f" | {ref.replace('raw ', ''):>12} rate   cpu"
    print(head)
    print("-" * len(head))

    def stats(name):
        r = best.get(name)
        if r is None:
            return None
        units = r["n"] / 1e6 if not spawn else r["n"]  # MB or spawns
        return {"rate": units / r["seconds"], "cpu": float(r["self_cpu"]) / units * 1e6,
                "child": float(r["child_cpu"]) / units * 1e6, "seconds": r["seconds"]}

    for name, style, _ in rows:
        if name in failed:
            print(f"{name:<17} FAILED: {failed[name]}")
            continue
        s = stats(name)
        if s is None:
            continue
        line = f"{name:<17} {s['seconds']:>8.3f} {s['rate']:>9.1f} {s['cpu']:>13.1f} {s['child']:>15.1f}"
        for ref, same_style in refs:
            ref_name = f"{ref} {'process' if style == 'ref' else style}" if same_style else ref
            r = stats(ref_name) if ref_name != name else None
            line += f" | {fmt_ratio(s['rate'], r and r['rate']):>12} {fmt_ratio(s['cpu'], r and r['cpu']):>5}"
        print(line)
        note = best[name].get("note")
        if note:
            print(f"{'':<17} note: {note}")
    targets = TARGETS["cat" if not spawn else "spawn"]
    for name, style, _ in rows:
        if not name.startswith("aios") or name in failed or name not in best:
            continue
        parts = []
        for ref, tgt in targets.items():
            ref_name = ref if ref == "raw libuv" else f"{ref} {style}"
            if not spawn and ref == "raw libuv" and not name.endswith(" sp"):
                ref_name = "raw libuv pipe2"  # the same kernel objects: pipes
            if ref_name in best and ref_name not in failed:
                got = stats(name)["rate"] / stats(ref_name)["rate"]
                parts.append(f"{got:.2f}x {ref_name} (target >= {tgt:g}x: {'met' if got >= tgt else 'BELOW'})")
        if parts:
            print(f"  {name}: " + ", ".join(parts))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    start = time.monotonic()
    problems = build()
    for p in problems:
        print(f"subprocess: {p}")
    uvloop = have_uvloop()
    pin, pin_text = pinning()
    cases = ["seq", "inflight", "cat"]
    table = {case: impls(case, uvloop) for case in cases}
    print(f"subprocess: {REPEATS} runs of each, implementations interleaved; {pin_text}"
          + ("" if uvloop else "; uvloop not importable: no uvloop figures"))
    results = {case: {} for case in cases}
    failed = {case: {} for case in cases}
    raw = open(os.path.join(BIN, "subprocess_results.txt"), "w")
    for rep in range(1, REPEATS + 1):
        print(f"-- run {rep}/{REPEATS}")
        for case in cases:
            for name, _style, cmd in table[case]:
                if name in failed[case]:
                    continue
                if not os.access(cmd[0], os.X_OK):
                    failed[case][name] = f"{cmd[0]} was not built"
                    continue
                env = dict(os.environ, **CAT_ENV) if case == "cat" and MALLOC_FIX else None
                try:
                    res = run_one(pin, cmd, env)
                except RuntimeError as e:
                    failed[case][name] = str(e)
                    raw.write(f"{case} {name.replace(' ', '_')} FAILED {e}\n")
                    print(f"  {case:<8} {name:<17} FAILED {e}")
                    continue
                raw.write(f"{case} {name.replace(' ', '_')} {res['line']}\n")
                print(f"  {case:<8} {name:<17} {res['line']}")
                if name not in results[case] or res["seconds"] < results[case][name]["seconds"]:
                    results[case][name] = res
    raw.close()
    print(f"\n== subprocess: best of {REPEATS}; {pin_text}. cpu: the parent's user+system time,"
          " child: its children's (RUSAGE_CHILDREN).")
    print("   Ratios: rate = the row's / the reference's, cpu = the row's parent cpu / the reference's"
          " (below 1 is cheaper);")
    print("   the asyncio and uvloop references are of the row's style (process for the raw libuv rows).")
    for case in cases:
        print_case(case, table[case], results[case], failed[case])
    print(f"\nsubprocess: raw lines in bench/bin/subprocess_results.txt; {time.monotonic() - start:.0f} s")
    return 1 if problems or any(failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
