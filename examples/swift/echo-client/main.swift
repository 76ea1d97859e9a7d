// aio-echo-client PORT [MESSAGE...]: sends each message as a line to the
// echo server on 127.0.0.1:PORT and prints what comes back.
import AioSwift

let arguments = CommandLine.arguments
let port = arguments.count > 1 ? Int(arguments[1]) ?? 8888 : 8888
let messages = arguments.count > 2 ? Array(arguments[2...]) : ["hello", "world"]

try run { @Sendable () async throws in
  let loop = try getRunningLoop()
  let (reader, writer) = try await loop.openConnection(host: "127.0.0.1", port: port)
  for message in messages {
    try writer.write(Array((message + "\n").utf8))
    let line = try await reader.readLine()
    print("aio-echo-client: got \(String(decoding: line, as: UTF8.self))", terminator: "")
  }
  writer.writeEOF()
  _ = try await reader.read()  // the server closes after our EOF
  writer.close()
  try await writer.waitClosed()
}
