// aio-echo-server PORT: echoes every connection on 127.0.0.1:PORT with the
// streams API (one task per connection) until SIGINT or SIGTERM, then
// closes the server and its clients. Swift 6 top-level code.
import AioSwift
import Glibc

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments.last!) ?? 8888 : 8888

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
  // asyncio's add_signal_handler: the closure runs on the loop, as any callback.
  for signum in [SIGINT, SIGTERM] {
    try loop.addSignalHandler(signum) {
      server.close()
      server.closeClients()
    }
  }
  print("aio-echo-server: serving on 127.0.0.1:\(port)")
  fflush(nil)  // all streams: Swift 6 does not let us name the global stdout
  try await server.waitClosed()
  print("aio-echo-server: closed")
}
