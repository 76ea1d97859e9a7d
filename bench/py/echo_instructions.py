"""The echo benchmark counted in instructions: each server under callgrind.

    python3 bench/py/echo_instructions.py [WORD...]

Runs each server of echo_bench.SERVERS (only those whose name contains one
of the WORDs, when given, plus the references raw libuv and uvloop) under
`valgrind --tool=callgrind`, one at a time, and puts each row of
echo_bench.ROWS to it with bench/bin/echo_load: WARMUP seconds uncounted,
then SECONDS counted. callgrind dumps its counters when the load generator
says the counted part starts and again when it ends (the load generator
holds its connections open until then, ECHO_LOAD_HOLD), so the second dump
holds the instructions the server ran in user space (all its code and
libraries) over the counted round trips, not its closing of them. The
table gives instructions per message and the ratio to uvloop's server of
the same style (uvloop protocol for transport-style servers, uvloop
streams for streams) and to raw libuv.

Instruction counts do not depend on what else the machine runs, so these
ratios are stable where echo_bench's rates and CPU times are noisy. They
leave out the kernel: every server here makes the same read, write and
epoll_wait calls per message, and the kernel's share of the CPU time is the
same for all. callgrind slows a server some fifty times, so a row counts
thousands of messages, not hundreds of thousands, and a row of 100
connections spreads them over fewer messages per connection than
echo_bench does.

Knobs (environment): BENCH_ECHO_CG_SECONDS=3 (counted), BENCH_ECHO_CG_WARMUP=2.
Needs valgrind (callgrind_control comes with it); prints a note and exits 0
without it. Exit status 1 when a server or the load generator failed.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import echo_bench as eb
from harness import Failed, Skip, exit_on_termination, kill_all

SECONDS = float(os.environ.get("BENCH_ECHO_CG_SECONDS", "3"))
WARMUP = float(os.environ.get("BENCH_ECHO_CG_WARMUP", "2"))
# An interpreter under callgrind takes seconds to start.
eb.READY_SECONDS = 120


def dump(pid):
    """Has callgrind write its counters out (and start again from zero)."""
    r = subprocess.run(["callgrind_control", "-d", str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise Failed(f"callgrind_control -d {pid}: {r.stderr.decode(errors='replace').strip()}")


def total_instructions(path):
    """The instruction total of one callgrind dump (its summary line)."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise Failed(f"{path} has no summary line")


def run_row(server, conns, size, outdir):
    """Instructions and round trips over the counted part of one row."""
    before = set(glob.glob(os.path.join(outdir, "cg.*")))
    result, _, _ = eb.drive(server, conns, size, SECONDS, WARMUP,
                            lambda lg: dump(server.proc.pid), lambda lg: dump(server.proc.pid),
                            hold=True, slack=60)
    # The dumps are numbered in order: the last one is the counted part's.
    new = sorted(set(glob.glob(os.path.join(outdir, "cg.*"))) - before,
                 key=lambda p: int(p.rsplit(".", 1)[1]))
    if len(new) < 2:
        raise Failed(f"callgrind wrote {len(new)} dumps, not 2")
    return {"msgs": int(result.split()[1]), "ir": total_instructions(new[-1])}


def main():
    words = sys.argv[1:]
    if any(w.startswith("-") for w in words):
        sys.exit(__doc__)
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("echo_instructions: valgrind is not installed: skipped")
        return 0
    exit_on_termination()
    wanted = eb.chosen_servers(words)
    styles = {name: style for name, style, _ in wanted}
    print(f"echo_instructions: Python {sys.version.split()[0]}, {len(wanted)} servers x {len(eb.ROWS)} rows under callgrind,"
          f" {WARMUP:g} s of warm-up then {SECONDS:g} s counted; servers on CPU 0, load on CPU 1")
    results, failed = {}, False
    for name, style, argv in wanted:
        outdir = tempfile.mkdtemp(prefix="echo_cg_")
        server = eb.Server(name, [shutil.which("valgrind"), "--tool=callgrind", "--quiet",
                                  f"--callgrind-out-file={outdir}/cg.%p"] + argv)
        if not os.path.exists(argv[0]):
            print(f"  {name:<20} skipped: {argv[0]} does not exist (not built)")
            continue
        try:
            server.start()
            for conns, size in eb.ROWS:
                results[(name, eb.row_name(conns, size))] = run_row(server, conns, size, outdir)
        except Skip as e:
            print(f"  {name:<20} skipped: {e}")
        except Failed as e:
            print(f"  {name:<20} FAILED: {e}")
            failed = True
        finally:
            server.stop(quiet=True)
            shutil.rmtree(outdir, ignore_errors=True)
    print(f"\n== echo in instructions: user-space instructions the server ran per message"
          " (callgrind), one message in flight per connection")
    print("   Ratios: server instructions/msg over the reference's (below 1 is cheaper).")
    head = (f"{'server':<20} {'row':<9} {'msgs':>7} {'instr/msg':>10} | {'libuv':>7} |"
            f" {'uvloop':>6}")
    print(head)
    print("-" * len(head))
    for conns, size in eb.ROWS:
        row = eb.row_name(conns, size)
        base = results.get((eb.LIBUV, row))
        for name, _, _ in wanted:
            r = results.get((name, row))
            if r is None:
                continue
            per = r["ir"] / r["msgs"]
            uv = results.get((eb.UVLOOP[styles[name]], row))
            print(f"{name:<20} {row:<9} {r['msgs']:>7} {per:>10.0f} |"
                  f" {eb.ratio(per, base and base['ir'] / base['msgs']):>7} |"
                  f" {eb.ratio(per, uv and uv['ir'] / uv['msgs']):>6}")
        print()
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        kill_all()
