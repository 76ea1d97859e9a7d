#!/usr/bin/env bash
# Checks the built library's promises: only aios_* symbols leave it, every
# function the header declares is exported, the soname follows the major
# version, and no Swift runtime library is needed at run time.
set -uo pipefail
lib=${1:?usage: check_library.sh build/lib/libaio-swift.so header.h}
header=${2:?usage: check_library.sh build/lib/libaio-swift.so header.h}
failed=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; failed=$((failed + 1)); fi; }

exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRWV]$/ {sub(/@.*/, "", $3); print $3}' | sort)
strangers=$(echo "$exported" | grep -v '^aios_' | grep -vE '^(_init|_fini|__bss_start|_edata|_end)$' || true)
check "exports only aios_* ($(echo "$exported" | grep -c '^aios_') symbols)" '[ -z "$strangers" ] || { echo "  also exported: $(echo $strangers | head -c 300)"; false; }'

declared=$(grep -oE '^AIOS_EXTERN [^;]*\baios_[a-z0-9_]+\(' "$header" | grep -oE 'aios_[a-z0-9_]+\($' | tr -d '(' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
check "exports every function the header declares ($(echo "$declared" | wc -l))" '[ -z "$missing" ] || { echo "  missing: $missing"; false; }'

# Read each tool's output whole first: under pipefail, `tool | grep -q` fails
# when grep exits at its first match and the tool dies of SIGPIPE.
dynamic=$(readelf -d "$lib")
needed=$(ldd "$lib")
check "soname is libaio-swift.so.0" 'grep -q "SONAME.*\[libaio-swift\.so\.0\]" <<<"$dynamic"'
check "needs no Swift runtime library" '! grep -qi swift <<<"$needed"'
check "needs libuv" 'grep -q libuv <<<"$needed" || { echo "  ldd says: $needed"; false; }'

echo "$((5 - failed)) passed, $failed failed"
[ "$failed" = 0 ]
