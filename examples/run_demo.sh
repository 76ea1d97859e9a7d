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
echo "== Swift (examples/swift/demo/main.swift)"
swift build -c release --product aio-demo ${SWIFT_FLAGS:-} >/dev/null
.build/release/aio-demo

# A free port for the echo servers (the kernel picks one; it stays free
# for the moment between this and the server's bind).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.1)" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "demo: nothing listens on port $1" >&2
  return 1
}
# Starts a server in the background, runs a client against it, then stops
# the server with SIGTERM and checks it closed cleanly.
echo_round() {
  local port server client
  port=$(free_port)
  server=$1
  client=$2
  shift 2
  "$server" "$port" &
  local pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  wait_port "$port"
  "$client" "$port" "$@"
  kill -TERM "$pid"
  wait "$pid"
  trap - EXIT
}

echo
echo "== C echo server and client (examples/c/echo_server.c, echo_client.c)"
for program in echo_server echo_client chat_server; do
  cc -std=c99 -Wall -Wextra -Werror -pedantic -o "examples/c/bin/$program" "examples/c/$program.c" \
    $(PKG_CONFIG_PATH="$BUILD/lib/pkgconfig" pkg-config --cflags --libs aio-swift) -Wl,-rpath,"$BUILD/lib"
done
echo_round examples/c/bin/echo_server examples/c/bin/echo_client "hello from C" "bye"

echo
echo "== Swift echo server and client (examples/swift/echo-server, echo-client)"
swift build -c release --product aio-echo-server ${SWIFT_FLAGS:-} >/dev/null
swift build -c release --product aio-echo-client ${SWIFT_FLAGS:-} >/dev/null
echo_round .build/release/aio-echo-server .build/release/aio-echo-client "hello from Swift" "bye"
echo_round .build/release/aio-echo-server examples/c/bin/echo_client "C client, Swift server"

echo
echo "== C subprocesses (examples/c/pipeline.c, timeout_kill.c)"
for program in pipeline timeout_kill; do
  cc -std=c99 -Wall -Wextra -Werror -pedantic -o "examples/c/bin/$program" "examples/c/$program.c" \
    $(PKG_CONFIG_PATH="$BUILD/lib/pkgconfig" pkg-config --cflags --libs aio-swift) -Wl,-rpath,"$BUILD/lib"
done
examples/c/bin/pipeline "seq 1 5" "tr 0-9 a-j"
examples/c/bin/timeout_kill 0.5 "echo started; sleep 0.1; printf 'partial output'; exec sleep 30"

echo
echo "== Swift: a command's output, under a timeout (examples/swift/capture)"
swift build -c release --product aio-capture ${SWIFT_FLAGS:-} >/dev/null
.build/release/aio-capture 0.5 "echo started; printf 'partial output'; exec sleep 30"
