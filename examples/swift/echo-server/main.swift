// aio-echo-server PORT: echoes every connection on 127.0.0.1:PORT with the
// streams API (one task per connection) until SIGINT or SIGTERM, then
// closes the server and its clients. Swift 6 top-level code.
import AioSwift
import Glibc

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments.last!) ?? 8888 : 8888

/// The signal handler only writes a byte; the other end of the socket pair
/// is a transport of the loop, so stopping runs as ordinary loop code.
nonisolated(unsafe) var signalWriteEnd: Int32 = -1

final class StopOnSignal: StreamProtocol {
  let stop: () -> Void
  init(_ stop: @escaping () -> Void) { self.stop = stop }
  func dataReceived(_ data: UnsafeRawBufferPointer) { stop() }
}

try run { @Sendable () async throws in
  let loop = try getRunningLoop()
  let server = try await loop.startServer(host: "127.0.0.1", port: port) { reader, writer in
    while true {
      let chunk = try await reader.read(65536)
      if chunk.isEmpty { break }
      try writer.write(chunk)
      try await writer.drain()
    }
    writer.close()
  }
  var pair: [Int32] = [-1, -1]
  guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { throw OSError(errno: errno) }
  signalWriteEnd = pair[1]
  let watcher = try await loop.connectAcceptedSocket({
    StopOnSignal {
      server.close()
      server.closeClients()
    }
  }, fd: pair[0])
  for signum in [SIGINT, SIGTERM] {
    signal(signum) { number in
      var byte = UInt8(truncatingIfNeeded: number)
      _ = write(signalWriteEnd, &byte, 1)
    }
  }
  signal(SIGPIPE, SIG_IGN)
  print("aio-echo-server: serving on 127.0.0.1:\(port)")
  fflush(nil)  // all streams: Swift 6 does not let us name the global stdout
  try await server.waitClosed()
  watcher.close()
  print("aio-echo-server: closed")
}
