#!/usr/bin/env bash
# Runs the C test binaries, each under the given valgrind command.
#
#   bash Tests/c/run.sh "<valgrind command>" Tests/c/bin/test_a Tests/c/bin/test_b ...
#
# $1 is the command to run each binary under (word-split; it ends with
# --error-exitcode=99 and leak checking); empty runs the binaries directly.
# Prints "PASS name" or "FAIL name" per binary on stdout (the output of a
# failing binary goes to stderr), then "N passed, N failed". Exits 1 if any
# failed, 2 if there was nothing to run.

set -u

if [ "$#" -lt 1 ]; then
  echo "usage: $0 \"<valgrind command or empty>\" test_binary..." >&2
  exit 2
fi

runner=$1
shift

if [ "$#" -eq 0 ]; then
  echo "$0: no test binaries given" >&2
  echo "0 passed, 0 failed"
  exit 2
fi

passed=0
failed=0
log=$(mktemp "${TMPDIR:-/tmp}/aios-c-test.XXXXXX")
trap 'rm -f "$log"' EXIT

for bin in "$@"; do
  name=$(basename "$bin")
  if [ ! -x "$bin" ]; then
    echo "FAIL $name (not built: $bin)"
    failed=$((failed + 1))
    continue
  fi
  if [ -n "$runner" ]; then
    # Word splitting of the runner is intended; no globbing.
    set -f
    # shellcheck disable=SC2086
    $runner "$bin" >"$log" 2>&1
    rc=$?
    set +f
  else
    "$bin" >"$log" 2>&1
    rc=$?
  fi
  if [ "$rc" -eq 0 ]; then
    echo "PASS $name"
    passed=$((passed + 1))
  else
    case $rc in
      99) why="valgrind found errors" ;;
      1) why="a test failed" ;;
      *) if [ "$rc" -gt 128 ]; then why="killed by signal $((rc - 128))"; else why="exit $rc"; fi ;;
    esac
    echo "FAIL $name ($why)"
    {
      echo "---- $name (exit $rc) ----"
      sed 's/^/  /' "$log"
      echo "---- end of $name ----"
    } >&2
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
