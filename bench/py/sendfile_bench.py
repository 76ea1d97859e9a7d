"""The sendfile benchmark: 1 GiB from a file to a TCP socket on 127.0.0.1,
with raw sendfile(2) in C, libaio-swift's aios_sock_sendfile and
aios_transport_sendfile (and its read-and-write fallback), asyncio's
loop.sock_sendfile and uvloop's, side by side.

    python3 bench/py/sendfile_bench.py

Builds bench/bin/sendfile_bench (cc -O2, the library through pkg-config from
$BUILD/lib/pkgconfig, BUILD=build by default), writes a 1 GiB file of random
bytes in /dev/shm (memory: the figures are of sending, not of a disk; in the
temp dir where there is no /dev/shm), then runs each sender REPEATS times,
interleaved, and prints the best run of each with its ratios to raw
sendfile(2).

Each run: a fresh receiver (`sendfile_bench sink`: a blocking read loop into
a 1 MiB buffer, counting) pinned to CPU 1; the sender pinned to CPU 0 (taskset)
connects, sends the whole file and closes. Figures: GiB/s over the sender's
wall time from connected to sent, the sender's CPU seconds per GiB (user +
system, getrusage), and whether the receiver counted every byte. Ratios:
rate = ours / raw (above 1 is faster), cpu = ours per GiB / raw's (below 1 is
cheaper). The target (0.9x raw's rate for aios sock and transport) is printed,
never enforced.

Knobs (environment): BENCH_REPEATS=3, BENCH_SENDFILE_MB=1024,
BENCH_SENDFILE_PIN=1 (0: no taskset), BUILD=build, CC=cc. Exit status 1 when
a sender or the receiver failed.

Internally the Python senders run as
    sendfile_bench.py --sender=asyncio|uvloop FILE PORT
"""
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bench", "bin")
PROGRAM = os.path.join(BIN, "sendfile_bench")
SELF = [sys.executable, os.path.abspath(__file__)]


def env_num(name, default):
    return int(os.environ.get(name, default))


def python_sender(kind, path, port):
    if kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()

    async def main():
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        with open(path, "rb") as file:
            start = time.monotonic()
            cpu = time.process_time()
            sent = await loop.sock_sendfile(sock, file)
            seconds, used = time.monotonic() - start, time.process_time() - cpu
        sock.close()
        print(f"sent {sent} seconds {seconds:.6f} cpu {used:.6f}", flush=True)
        return sent == os.path.getsize(path)

    ok = loop.run_until_complete(main())
    loop.close()
    return 0 if ok else 1


def build():
    os.makedirs(BIN, exist_ok=True)
    build_dir = os.environ.get("BUILD", os.path.join(ROOT, "build"))
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(build_dir, "lib", "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "aio-swift"], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    libdir = os.path.join(build_dir, "lib")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-Wall", "-Wextra", "-o", PROGRAM,
                    os.path.join(ROOT, "bench", "c", "sendfile_bench.c"), *flags, f"-Wl,-rpath,{libdir}"],
                   check=True)


def have_uvloop():
    try:
        import uvloop  # noqa: F401
        return True
    except ImportError:
        return subprocess.run([sys.executable, "-m", "pip", "install", "-q", "uvloop"]).returncode == 0


def pinned(cpu, command):
    if os.environ.get("BENCH_SENDFILE_PIN", "1") != "0" and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *command]
    return command


def run_once(sender, path, size):
    sink = subprocess.Popen(pinned(1, [PROGRAM, "sink"]), stdout=subprocess.PIPE, text=True)
    try:
        port = int(sink.stdout.readline().split()[1])
        done = subprocess.run(pinned(0, [*sender, path, str(port)]), capture_output=True, text=True, timeout=120)
        received = sink.stdout.readline().split()
        sink.wait(timeout=30)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    words = done.stdout.split()
    if "NotImplementedError" in done.stderr:
        return None, "not implemented (NotImplementedError)"
    if done.returncode != 0 or len(words) < 6 or received[:1] != ["received"]:
        return None, (done.stderr.strip() or done.stdout.strip() or "no output")[-300:]
    sent, seconds, cpu = int(words[1]), float(words[3]), float(words[5])
    if sent != size or int(received[1]) != size:
        return None, f"sent {sent}, received {received[1]} of {size}"
    return (seconds, cpu), None


def main():
    if len(sys.argv) == 4 and sys.argv[1].startswith("--sender="):
        return python_sender(sys.argv[1].split("=", 1)[1], sys.argv[2], int(sys.argv[3]))
    repeats = env_num("BENCH_REPEATS", 3)
    megabytes = env_num("BENCH_SENDFILE_MB", 1024)
    build()
    senders = [
        ("raw sendfile(2)", [PROGRAM, "raw"]),
        ("aios sock_sendfile", [PROGRAM, "sock"]),
        ("aios transport sendfile", [PROGRAM, "transport"]),
        ("aios fallback (read+write)", [PROGRAM, "fallback"]),
        ("asyncio sock_sendfile", [*SELF, "--sender=asyncio"]),
    ]
    if have_uvloop():
        senders.append(("uvloop sock_sendfile", [*SELF, "--sender=uvloop"]))
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix="aios-sendfile-", dir=directory)
    failed = False
    try:
        with os.fdopen(fd, "wb") as file:
            for _ in range(megabytes):
                file.write(os.urandom(1 << 20))
        size = megabytes << 20
        best, missing = {}, {}
        for _ in range(repeats):
            for name, command in senders:
                figures, error = run_once(command, path, size)
                if error:
                    missing[name] = error
                    if not error.startswith("not implemented"):
                        print(f"{name}: FAILED: {error}", file=sys.stderr)
                        failed = True
                    continue
                if name not in best or figures[0] < best[name][0]:
                    best[name] = figures
    finally:
        os.unlink(path)
    gib = size / (1 << 30)
    print(f"\nsendfile of {megabytes} MiB over 127.0.0.1 (sender on CPU 0, receiver on CPU 1), "
          f"best of {repeats}")
    print(f"{'sender':28} {'GiB/s':>8} {'cpu s/GiB':>10} {'rate vs raw':>12} {'cpu vs raw':>11}")
    raw = best.get("raw sendfile(2)")
    for name, _ in senders:
        if name not in best:
            print(f"{name:28} {missing.get(name, 'FAILED')}")
            continue
        seconds, cpu = best[name]
        rate, per = gib / seconds, cpu / gib
        ratios = ""
        if raw:
            ratios = f"{(raw[0] / seconds):11.2f}x {(per / (raw[1] / gib)):10.2f}x"
        print(f"{name:28} {rate:8.2f} {per:10.3f} {ratios}")
    print("target: aios sock_sendfile and transport sendfile at least 0.9x raw sendfile(2)'s rate")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
