#!/usr/bin/env bash
# bench/run.sh: libaio-swift's benchmarks, side by side with CPython's asyncio
# and uvloop. `make bench` builds build/ and then runs this script.
#
# What it does:
#   1. installs what it lacks (pkg-config and libuv's .pc for pkg-config,
#      uvloop through pip: without uvloop the uvloop column is left out);
#   2. compiles bench/c/*.c with cc -O2 through pkg-config into bench/bin/;
#   3. builds the Swift benchmark product aio-bench if the package has one;
#   4. runs every benchmark REPEATS times, interleaving the implementations,
#      and appends each printed line to bench/bin/results.txt (each process
#      first runs one untimed warm-up round of the same size, C and Python
#      alike, then times one);
#   5. prints the table (bench/py/report.py): best run of each, rates, the
#      ratio ours/reference and the target next to it. Targets are never
#      enforced: a slow run still exits 0. A benchmark that fails (a library
#      call returned an error, a check on its results did not hold) is shown
#      as FAILED with its message, and the script exits 1 at the end.
#
# Knobs (environment):
#   BENCH_REPEATS=3          runs per figure (the best one is shown)
#   BENCH_SPAWN_N=1000000    tasks for C/Swift spawn (and the scaling's 1M point)
#   BENCH_SPAWN_PY_N=200000  tasks for the Python spawn references (their
#                            per-task cost grows with N: a smaller N favours them)
#   BENCH_CALL_N=5000000     callbacks for C/Swift call_soon (plain and chained)
#   BENCH_CALL_PY_N=1000000  callbacks for the Python call_soon references
#   BENCH_MEMORY_N=100000    pending tasks for task_memory
#   BENCH_PINGPONG_N=100000  round trips for queue_pingpong (every implementation)
#   BENCH_LOCK_TASKS=100     tasks sharing the Lock of lock_contention,
#   BENCH_LOCK_ITERS=1000    and critical sections each
#   BENCH_FANOUT_TASKS=10000 tasks woken by one Event.set() in event_fanout,
#   BENCH_FANOUT_ROUNDS=10   and rounds (each with new tasks)
#   BENCH_GATHER_N=100000    tasks for gather100k and taskgroup100k (every
#                            implementation); the C scaling points are 1k, 10k
#   BENCH_WAIT_FOR_N=200000  wait_for calls on a done future (every implementation)
#   BENCH_THREAD_N=30000     to_thread round trips (every implementation),
#   BENCH_THREAD_CALLERS=8   and the tasks sharing them in to_thread_concurrent
#   BENCH_COMBINATOR_TIMEOUT=20  seconds allowed for one process of the
#                            combinator benchmarks (asyncio needs about 2 s for
#                            its warm-up and timed run of gather100k)
#   BENCH_SWIFT=1            0: skip the Swift build and figures
#   BENCH_ECHO=1             0: skip the echo benchmark (bench/py/echo_bench.py,
#                            run after the table; its knobs are listed there)
#   BENCH_ECHO_CG=1          0: skip the echo benchmark in instructions
#                            (bench/py/echo_instructions.py: the same servers and
#                            rows under callgrind, about three minutes), run after it
#   BENCH_PYLOOPS=1          0: skip the Python loops' scheduling rows
#                            (bindings/python/bench/loop_bench.py: asyncio, uvloop
#                            and aioswift), run after the table on every
#                            interpreter of BENCH_PYTHONS (default: $PYTHON and
#                            pyenv's 3.11, 3.12 and 3.13 when they are there),
#                            each with the binding built for it
#   BENCH_SUBPROCESS=1       0: skip the subprocess benchmark, run after the echo one
#                            (bench/py/subprocess_bench.py; its knobs are listed there)
#   BENCH_UDP=1              0: skip the UDP ping-pong benchmark, run after that
#                            (bench/py/udp_bench.py; its knobs are listed there)
#   BENCH_SENDFILE=1         0: skip the sendfile benchmark, run after the UDP one
#                            (bench/py/sendfile_bench.py; its knobs are listed there)
#   BENCH_HTTP=1             0: skip the HTTP benchmark (aiohttp under wrk on the stock
#                            loop, uvloop and aioswift), run last
#                            (bench/py/http_bench.py; its knobs are listed there)
#   SWIFT_BUILD_TIMEOUT=300  seconds allowed for building aio-bench
#   SWIFT_BENCH_FLAGS        extra flags for that build; by default the same
#                            -Xswiftc flags as the Makefile's library build
#                            (SWIFTC_RELEASE), so the library's modules are not
#                            compiled again and run without exclusivity checks
#   BENCH_RUN_TIMEOUT=120    seconds allowed for one benchmark process; a
#                            benchmark that timed out once is not run again
#   PYTHON=python3, CC=cc, SWIFT=swift, BUILD=<repo>/build
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
PYTHON=${PYTHON:-python3}
CC=${CC:-cc}
SWIFT=${SWIFT:-swift}
REPEATS=${BENCH_REPEATS:-3}
SPAWN_N=${BENCH_SPAWN_N:-1000000}
SPAWN_PY_N=${BENCH_SPAWN_PY_N:-200000}
CALL_N=${BENCH_CALL_N:-5000000}
CALL_PY_N=${BENCH_CALL_PY_N:-1000000}
MEMORY_N=${BENCH_MEMORY_N:-100000}
PINGPONG_N=${BENCH_PINGPONG_N:-100000}
LOCK_TASKS=${BENCH_LOCK_TASKS:-100}
LOCK_ITERS=${BENCH_LOCK_ITERS:-1000}
FANOUT_TASKS=${BENCH_FANOUT_TASKS:-10000}
FANOUT_ROUNDS=${BENCH_FANOUT_ROUNDS:-10}
GATHER_N=${BENCH_GATHER_N:-100000}
WAIT_FOR_N=${BENCH_WAIT_FOR_N:-200000}
THREAD_N=${BENCH_THREAD_N:-30000}
THREAD_CALLERS=${BENCH_THREAD_CALLERS:-8}
COMBINATOR_TIMEOUT=${BENCH_COMBINATOR_TIMEOUT:-20}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-120}
SWIFT_BUILD_TIMEOUT=${SWIFT_BUILD_TIMEOUT:-300}
SWIFT_BENCH_FLAGS=${SWIFT_BENCH_FLAGS--Xswiftc -static-stdlib -Xswiftc -enforce-exclusivity=unchecked}
BIN=$ROOT/bench/bin
RESULTS=$BIN/results.txt
START=$SECONDS

say() { printf '%s\n' "$*"; }

# ---------------------------------------------------------------- 1. deps
if [ ! -e "$BUILD/lib/libaio-swift.so" ] || [ ! -e "$BUILD/lib/pkgconfig/aio-swift.pc" ]; then
  say "bench: $BUILD/lib/libaio-swift.so or its aio-swift.pc is missing: run 'make' (or 'make bench') first" >&2
  exit 1
fi

apt_install() {
  say "bench: installing $* with apt-get"
  (apt-get update -qq || true) >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    say "bench: apt-get install $* failed" >&2
}

command -v "$CC" >/dev/null 2>&1 || apt_install gcc libc6-dev
command -v pkg-config >/dev/null 2>&1 || apt_install pkg-config
PKG() { PKG_CONFIG_PATH="$BUILD/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" pkg-config "$@"; }
# aio-swift.pc names libuv in Requires.private, so pkg-config wants libuv.pc.
PKG --exists aio-swift 2>/dev/null || apt_install libuv1-dev
if ! FLAGS=$(PKG --cflags --libs aio-swift); then
  say "bench: pkg-config cannot resolve aio-swift (PKG_CONFIG_PATH=$BUILD/lib/pkgconfig)" >&2
  exit 1
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  say "bench: $PYTHON not found: the asyncio references need it" >&2
  exit 1
fi
HAVE_UVLOOP=1
if ! "$PYTHON" -c 'import uvloop' >/dev/null 2>&1; then
  say "bench: installing uvloop with pip"
  "$PYTHON" -m pip install -q uvloop >/dev/null 2>&1 || true
  if ! "$PYTHON" -c 'import uvloop' >/dev/null 2>&1; then
    say "bench: uvloop could not be installed; going on without the uvloop references"
    HAVE_UVLOOP=0
  fi
fi

# ---------------------------------------------------------------- 2. C
mkdir -p "$BIN"
C_BENCHES="spawn call_soon task_memory sync combinators"
for b in $C_BENCHES; do
  # shellcheck disable=SC2086  # FLAGS is a list of flags
  if ! "$CC" -O2 -std=gnu11 -o "$BIN/$b" "bench/c/$b.c" $FLAGS -Wl,-rpath,"$BUILD/lib"; then
    say "bench: compiling bench/c/$b.c failed" >&2
    exit 1
  fi
done
# The echo benchmark's servers on the library: the C transport API, and the
# streams API (the example echo server).
# shellcheck disable=SC2086
if ! "$CC" -O2 -std=gnu11 -o "$BIN/echo_aios_transport" bench/c/echo_aios_transport.c $FLAGS -Wl,-rpath,"$BUILD/lib" ||
   ! "$CC" -O2 -std=gnu11 -o "$BIN/echo_aios_streams" examples/c/echo_server.c $FLAGS -Wl,-rpath,"$BUILD/lib"; then
  say "bench: compiling the echo servers on the library failed" >&2
  exit 1
fi
say "bench: compiled $C_BENCHES echo_aios_transport echo_aios_streams into bench/bin/ (cc -O2, $(PKG --modversion aio-swift))"
# The echo benchmark's load generator and raw libuv server (Makefile rules).
if [ "${BENCH_ECHO:-1}" != 0 ] && ! make --no-print-directory -s CC="$CC" bench/bin/echo_load bench/bin/echo_uv; then
  say "bench: building bench/bin/echo_load or bench/bin/echo_uv failed" >&2
  exit 1
fi

# ---------------------------------------------------------------- 3. Swift
HAVE_SWIFT=0
SWIFT_EXE=$ROOT/.build/release/aio-bench
if [ "${BENCH_SWIFT:-1}" = 0 ]; then
  say "swift: not built (BENCH_SWIFT=0)"
elif ! command -v "$SWIFT" >/dev/null 2>&1; then
  say "swift: not built ($SWIFT not found)"
else
  say "bench: building the Swift benchmark (swift build -c release --product aio-bench $SWIFT_BENCH_FLAGS)"
  # shellcheck disable=SC2086
  if timeout "$SWIFT_BUILD_TIMEOUT" "$SWIFT" build -c release --product aio-bench $SWIFT_BENCH_FLAGS \
       >"$BIN/swift-build.log" 2>&1 && [ -x "$SWIFT_EXE" ]; then
    HAVE_SWIFT=1
    # The echo benchmark's Swift server is the streams example.
    # shellcheck disable=SC2086
    timeout "$SWIFT_BUILD_TIMEOUT" "$SWIFT" build -c release --product aio-echo-server $SWIFT_BENCH_FLAGS \
      >>"$BIN/swift-build.log" 2>&1 || say "swift: aio-echo-server not built (see bench/bin/swift-build.log)"
  else
    rc=$?
    why=$(grep -m1 -iE "error|no product" "$BIN/swift-build.log" | cut -c1-160)
    [ "$rc" = 124 ] && why="build took more than ${SWIFT_BUILD_TIMEOUT}s"
    say "swift: not built (${why:-see bench/bin/swift-build.log})"
  fi
fi

# ---------------------------------------------------------------- 4. runs
: >"$RESULTS"
FAILED=0

declare -A TIMED_OUT=()

# run IMPL KEY CMD...: one run; appends `IMPL KEY <output line>` to RESULTS.
# LIMIT=seconds before it overrides RUN_TIMEOUT. A benchmark that timed out
# is not run again in the later repetitions (its FAILED line stays).
run() {
  local impl=$1 key=$2 limit=${LIMIT:-$RUN_TIMEOUT} out err rc
  shift 2
  if [ -n "${TIMED_OUT["$impl $key"]:-}" ]; then
    printf '  %-7s %-18s skipped (timed out in an earlier run)\n' "$impl" "$key"
    return
  fi
  err=$(mktemp)
  out=$(timeout "$limit" "$@" 2>"$err")
  rc=$?
  if [ "$rc" = 0 ] && [ -n "$out" ]; then
    printf '%s %s %s\n' "$impl" "$key" "$(printf '%s\n' "$out" | tail -n1)" >>"$RESULTS"
    printf '  %-7s %-18s %s\n' "$impl" "$key" "$(printf '%s\n' "$out" | tail -n1)"
  else
    local why
    if [ "$rc" = 124 ]; then why="timed out after ${limit}s"; TIMED_OUT["$impl $key"]=1
    else why="exit $rc: $(tail -n3 "$err" | tr '\n' ' ' | cut -c1-300)"; fi
    printf '%s %s FAILED %s\n' "$impl" "$key" "$why" >>"$RESULTS"
    printf '  %-7s %-18s FAILED %s\n' "$impl" "$key" "$why"
    FAILED=1
  fi
  rm -f "$err"
}

# crun: run, with the combinator benchmarks' time limit.
crun() { LIMIT=$COMBINATOR_TIMEOUT run "$@"; }

PY="$PYTHON bench/py"
LOOPS="asyncio"
[ "$HAVE_UVLOOP" = 1 ] && LOOPS="asyncio uvloop"

# The scaling runs the same number of tasks as spawn, in rounds of 10k / 100k.
ROUNDS_10K=$(( SPAWN_N / 10000 > 0 ? SPAWN_N / 10000 : 1 ))
ROUNDS_100K=$(( SPAWN_N / 100000 > 0 ? SPAWN_N / 100000 : 1 ))

say "bench: $REPEATS runs of each, implementations interleaved"
for ((rep = 1; rep <= REPEATS; rep++)); do
  say "-- run $rep/$REPEATS"
  # spawn (its C figure is also the 1M point of the scaling)
  run C spawn "$BIN/spawn" "$SPAWN_N"
  [ "$HAVE_SWIFT" = 1 ] && run Swift spawn "$SWIFT_EXE" spawn "$SPAWN_N" 1
  for l in $LOOPS; do run "$l" spawn $PY/spawn.py "$SPAWN_PY_N" --loop="$l"; done
  # call_soon, plain and chained
  run C call_soon "$BIN/call_soon" "$CALL_N" plain
  [ "$HAVE_SWIFT" = 1 ] && run Swift call_soon "$SWIFT_EXE" call_soon "$CALL_N"
  for l in $LOOPS; do run "$l" call_soon $PY/call_soon.py "$CALL_PY_N" --loop="$l"; done
  run C call_soon_chained "$BIN/call_soon" "$CALL_N" chained
  for l in $LOOPS; do run "$l" call_soon_chained $PY/call_soon.py "$CALL_PY_N" --loop="$l" --chained; done
  # scaling: the same 1M tasks in batches of 10k and 100k
  run C scaling_10k "$BIN/spawn" 10000 "$ROUNDS_10K"
  run C scaling_100k "$BIN/spawn" 100000 "$ROUNDS_100K"
  if [ "$HAVE_SWIFT" = 1 ]; then
    # Swift: the same rounds, and one 100k batch in a process of its own
    # (fresh memory, as the 1M batch has).
    run Swift scaling_100k "$SWIFT_EXE" spawn 100000 "$ROUNDS_100K"
    run Swift scaling_100k_fresh "$SWIFT_EXE" spawn 100000 1
  fi
  # task memory
  run C task_memory "$BIN/task_memory" "$MEMORY_N"
  run asyncio task_memory $PY/task_memory.py "$MEMORY_N" --loop=asyncio
  # synchronization primitives and queues (bench/c/sync.c, bench/py/sync.py)
  run C queue_pingpong "$BIN/sync" queue_pingpong "$PINGPONG_N"
  [ "$HAVE_SWIFT" = 1 ] && run Swift queue_pingpong "$SWIFT_EXE" queue_pingpong "$PINGPONG_N"
  for l in $LOOPS; do run "$l" queue_pingpong $PY/sync.py queue_pingpong "$PINGPONG_N" --loop="$l"; done
  run C lock_contention "$BIN/sync" lock_contention "$LOCK_TASKS" "$LOCK_ITERS"
  [ "$HAVE_SWIFT" = 1 ] && run Swift lock_contention "$SWIFT_EXE" lock_contention "$LOCK_TASKS" "$LOCK_ITERS"
  for l in $LOOPS; do
    run "$l" lock_contention $PY/sync.py lock_contention "$LOCK_TASKS" "$LOCK_ITERS" --loop="$l"
  done
  run C event_fanout "$BIN/sync" event_fanout "$FANOUT_TASKS" "$FANOUT_ROUNDS"
  [ "$HAVE_SWIFT" = 1 ] && run Swift event_fanout "$SWIFT_EXE" event_fanout "$FANOUT_TASKS" "$FANOUT_ROUNDS"
  for l in $LOOPS; do
    run "$l" event_fanout $PY/sync.py event_fanout "$FANOUT_TASKS" "$FANOUT_ROUNDS" --loop="$l"
  done
  # task combinators (bench/c/combinators.c, bench/py/combinators.py)
  for b in gather taskgroup; do
    crun C "${b}100k" "$BIN/combinators" "$b" "$GATHER_N"
    [ "$HAVE_SWIFT" = 1 ] && crun Swift "${b}100k" "$SWIFT_EXE" "$b" "$GATHER_N"
    for l in $LOOPS; do crun "$l" "${b}100k" $PY/combinators.py "$b" "$GATHER_N" --loop="$l"; done
    # its C per-task cost at smaller batches (the combinator's scaling)
    crun C "${b}_1k" "$BIN/combinators" "$b" 1000
    crun C "${b}_10k" "$BIN/combinators" "$b" 10000
  done
  crun C wait_for "$BIN/combinators" wait_for "$WAIT_FOR_N"
  [ "$HAVE_SWIFT" = 1 ] && crun Swift wait_for "$SWIFT_EXE" wait_for "$WAIT_FOR_N"
  for l in $LOOPS; do crun "$l" wait_for $PY/combinators.py wait_for "$WAIT_FOR_N" --loop="$l"; done
  # to_thread: one caller, then THREAD_CALLERS callers at once (none when it is 1)
  cases="1:to_thread"
  [ "$THREAD_CALLERS" != 1 ] && cases="$cases $THREAD_CALLERS:to_thread_concurrent"
  for c in $cases; do
    callers=${c%%:*} key=${c#*:}
    crun C "$key" "$BIN/combinators" to_thread "$THREAD_N" "$callers"
    [ "$HAVE_SWIFT" = 1 ] && crun Swift "$key" "$SWIFT_EXE" to_thread "$THREAD_N" "$callers"
    for l in $LOOPS; do
      crun "$l" "$key" $PY/combinators.py to_thread "$THREAD_N" "$callers" --loop="$l"
    done
  done
done

# ---------------------------------------------------------------- 5. table
echo
"$PYTHON" bench/py/report.py "$RESULTS"
[ "$HAVE_SWIFT" = 1 ] || say "(swift: not built, no Swift figures)"
[ "$HAVE_UVLOOP" = 1 ] || say "(uvloop: not available, no uvloop figures)"
# The binding for an interpreter, built in place (bindings/python), quietly.
build_binding() {
  make --no-print-directory -s -C bindings/python build BUILD="$BUILD" PYTHON="$1" >/dev/null 2>&1 ||
    say "bench: building bindings/python for $1 failed: no aioswift figures from it" >&2
}
# The Python loops' scheduling rows, on each interpreter (under a minute each; their own tables).
if [ "${BENCH_PYLOOPS:-1}" != 0 ]; then
  PYTHONS=${BENCH_PYTHONS:-"$(command -v "$PYTHON") $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[123]*/bin/python3 2>/dev/null | sort -u | tr '\n' ' ')"}
  SEEN=""
  for py in $PYTHONS; do
    version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
    case " $SEEN " in *" $version "*) continue ;; esac
    SEEN="$SEEN $version"
    build_binding "$py"
    echo; timeout 600 "$py" bindings/python/bench/loop_bench.py || FAILED=1
  done
fi
# The echo servers, side by side (about two minutes; its own table).
if [ "${BENCH_ECHO:-1}" != 0 ]; then
  build_binding "$PYTHON"
  echo; "$PYTHON" bench/py/echo_bench.py || FAILED=1
fi
# The same, counted in instructions under callgrind (about three minutes;
# figures the machine's noise does not move).
if [ "${BENCH_ECHO:-1}" != 0 ] && [ "${BENCH_ECHO_CG:-1}" != 0 ]; then
  echo; "$PYTHON" bench/py/echo_instructions.py aioswift || FAILED=1
fi
# Child processes, side by side (about a minute; its own table; it builds its two C programs).
if [ "${BENCH_SUBPROCESS:-1}" != 0 ]; then
  echo; BUILD="$BUILD" CC="$CC" "$PYTHON" bench/py/subprocess_bench.py || FAILED=1
fi
# UDP ping-pong servers, side by side (about a minute; its own table; it builds its two C programs).
if [ "${BENCH_UDP:-1}" != 0 ]; then
  echo; BUILD="$BUILD" CC="$CC" "$PYTHON" bench/py/udp_bench.py || FAILED=1
fi
# 1 GiB from a file to a socket, side by side (under a minute; its own table; it builds its C program).
if [ "${BENCH_SENDFILE:-1}" != 0 ]; then
  echo; BUILD="$BUILD" CC="$CC" "$PYTHON" bench/py/sendfile_bench.py || FAILED=1
fi
# aiohttp's web under wrk on the stock loop, uvloop and aioswift (about two minutes; its own
# table; it installs aiohttp and wrk and builds the Python binding for $PYTHON if they are missing).
if [ "${BENCH_HTTP:-1}" != 0 ]; then
  echo; BUILD="$BUILD" "$PYTHON" bench/py/http_bench.py || FAILED=1
fi
say "raw results: bench/bin/results.txt; total time $((SECONDS - START)) s"
exit "$FAILED"
