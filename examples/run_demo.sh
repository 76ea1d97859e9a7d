#!/usr/bin/env bash
# `make demo`: the C demo, built against build/ through pkg-config as a user
# would build it, then its Swift twin.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
mkdir -p examples/c/bin
echo "== C (examples/c/demo.c)"
cc -std=c99 -Wall -Wextra -Werror -pedantic -o examples/c/bin/demo examples/c/demo.c \
  $(PKG_CONFIG_PATH="$BUILD/lib/pkgconfig" pkg-config --cflags --libs aio-swift) -Wl,-rpath,"$BUILD/lib"
examples/c/bin/demo
echo
echo "== Swift (examples/swift/main.swift)"
swift build -c release --product aio-demo ${SWIFT_FLAGS:-} >/dev/null
.build/release/aio-demo
