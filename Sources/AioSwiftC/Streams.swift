// asyncio's streams: open_connection, start_server, StreamReader and
// StreamWriter, as one C object per connection.
import AioSwift
import CAioSwift
import Glibc

/// A connection's reader and writer (or a reader fed by hand).
final class CStream: ForeignObject {
  let reader: StreamReader
  let writer: StreamWriter?
  var foreignHandle: UInt64 = 0
  var foreignLoop: UnsafeMutableRawPointer? { Unmanaged.passUnretained(reader.loop).toOpaque() }

  init(reader: StreamReader, writer: StreamWriter?) {
    self.reader = reader
    self.writer = writer
    LiveObjects.streams.add(1, ordering: .relaxed)
  }

  deinit { LiveObjects.streams.subtract(1, ordering: .relaxed) }

  func connectedWriter() throws -> StreamWriter {
    guard let writer else { throw InvalidStateError("the stream has no transport") }
    return writer
  }
}

/// An aios_bytes_t holding `data`: one allocation, NUL-terminated.
func makeBytes(_ data: UnsafeRawBufferPointer) -> UnsafeMutableRawPointer? {
  let header = MemoryLayout<aios_bytes_t>.stride
  guard let block = malloc(header + data.count + 1) else { return nil }
  let contents = (block + header).assumingMemoryBound(to: UInt8.self)
  if data.count > 0 { contents.update(from: data.baseAddress!.assumingMemoryBound(to: UInt8.self), count: data.count) }
  contents[data.count] = 0
  block.assumingMemoryBound(to: aios_bytes_t.self).initialize(to: aios_bytes_t(length: data.count, data: contents))
  return block
}

@_cdecl("aios_bytes_free")
public func aios_bytes_free(_ bytes: UnsafeMutableRawPointer?) { free(bytes) }

func limit(_ value: Int) throws -> Int {
  guard value >= 0, value <= Int(Int32.max) else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "limit out of range") }
  return value == 0 ? defaultStreamLimit : value
}

/// A stream's future: its result is the stream.
private func streamFuture(_ loop: Loop, _ reader: StreamReader, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                          _ start: (@escaping (Result<StreamTransport, any Error>) -> Void) throws -> any CancellableRequest)
  throws {
  try requestFuture(loop, out, start, deliver: { future, transport in
    guard let writer = (transport.streamProtocol as? StreamReaderProtocol)?.writer else {
      try? future.setError(OSError(errno: ECONNRESET, "Connection lost"))
      return
    }
    setHandleResult(future, CStream(reader: reader, writer: writer), .stream)
  }, discard: { $0.abort() })
}

@_cdecl("aios_open_connection")
public func aios_open_connection(_ loop: OpaquePointer?, _ host: UnsafePointer<CChar>?, _ port: Int32, _ size: Int,
                                 _ options: UnsafePointer<aios_connect_options_t>?,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    let host = string(host)
    let connect = try connectOptions(options)
    let reader = try StreamReader(loop: loop, limit: try limit(size))
    let streamProtocol = StreamReaderProtocol(reader: reader)
    try streamFuture(loop, reader, out) {
      try Connector.tcp(loop: loop, host: host, port: Int(port), options: connect, makeProtocol: { streamProtocol },
                        done: $0)
    }
  }
}

@_cdecl("aios_open_unix_connection")
public func aios_open_unix_connection(_ loop: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ size: Int,
                                      _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard let path = string(path) else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let reader = try StreamReader(loop: loop, limit: try limit(size))
    let streamProtocol = StreamReaderProtocol(reader: reader)
    try streamFuture(loop, reader, out) {
      try Connector.unix(loop: loop, path: path, makeProtocol: { streamProtocol }, done: $0)
    }
  }
}

/// A C client callback; its argument goes with the server.
private final class CClientCallback {
  let function: aios_client_connected_fn
  let argument: OwnedArgument

  init(_ function: aios_client_connected_fn, _ argument: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?) {
    self.function = function
    self.argument = OwnedArgument(argument, destructor)
  }

  /// The task C returns for a new connection, if any (its reference is taken over).
  func connected(_ reader: StreamReader, _ writer: StreamWriter) -> AnyFuture? {
    let stream = CStream(reader: reader, writer: writer)
    guard let task = lend(stream, .stream, { function($0, argument.value) }) else { return nil }
    let handle = handleValue(task)
    guard let address = ObjectTable.address(handle, .task) else { return nil }
    let future = Unmanaged<AnyFuture>.fromOpaque(address).takeUnretainedValue()
    _ = ObjectTable.release(handle)
    // A task of another loop (or of a closed one) cannot serve this
    // connection: its outcome would never reach this loop.
    guard future.loop === reader.loop, !future.loop.isClosed else {
      reader.loop.callExceptionHandler(ExceptionContext(
        message: "client_connected_cb returned a task of another event loop",
        error: RuntimeError(code: AIOS_EWRONGLOOP.rawValue)))
      return nil
    }
    return future
  }

  func makeProtocol(limit: Int, loop: Loop) -> () throws -> (any StreamProtocol)? {
    { [self] in
      StreamReaderProtocol(reader: try StreamReader(loop: loop, limit: limit), clientConnected: connected)
    }
  }
}

private func startServer(_ loop: OpaquePointer?, _ function: aios_client_connected_fn?, _ arg: UnsafeMutableRawPointer?,
                         _ destructor: aios_destructor_fn?, _ size: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                         _ start: (Loop, @escaping () throws -> (any StreamProtocol)?,
                                   @escaping (Result<Server, any Error>) -> Void) throws -> any CancellableRequest) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard let function else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no client callback") }
    let limit = try limit(size)
    let callback = CClientCallback(function, arg, destructor)
    do {
      let makeProtocol = callback.makeProtocol(limit: limit, loop: loop)
      try serverFuture(loop, out) { try start(loop, makeProtocol, $0) }
    } catch {
      callback.argument.disown()
      throw error
    }
  }
}

@_cdecl("aios_open_read_pipe")
public func aios_open_read_pipe(_ loop: OpaquePointer?, _ fd: Int32, _ size: Int,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let reader = try StreamReader(loop: loop, limit: try limit(size))
    let streamProtocol = StreamReaderProtocol(reader: reader)
    try streamFuture(loop, reader, out) {
      try Connector.pipe(loop: loop, fd: fd, writing: false, makeProtocol: { streamProtocol }, done: $0)
    }
  }
}

@_cdecl("aios_open_write_pipe")
public func aios_open_write_pipe(_ loop: OpaquePointer?, _ fd: Int32,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let reader = try StreamReader(loop: loop)
    let streamProtocol = StreamReaderProtocol(reader: reader)
    try streamFuture(loop, reader, out) {
      try Connector.pipe(loop: loop, fd: fd, writing: true, makeProtocol: { streamProtocol }, done: $0)
    }
  }
}

@_cdecl("aios_start_server")
public func aios_start_server(_ loop: OpaquePointer?, _ function: aios_client_connected_fn?,
                              _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?,
                              _ host: UnsafePointer<CChar>?, _ port: Int32, _ size: Int,
                              _ options: UnsafePointer<aios_server_options_t>?,
                              _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  let host = string(host)
  let parsed: ServerOptions
  do { parsed = try serverOptions(options) } catch { return statusCode(of: error) }
  return startServer(loop, function, arg, destructor, size, out) { loop, makeProtocol, done in
    try Server.tcp(loop: loop, hosts: (host.map { [$0] } ?? []) + parsed.moreHosts, port: Int(port), options: parsed,
                   makeProtocol: makeProtocol, done: done)
  }
}

@_cdecl("aios_start_unix_server")
public func aios_start_unix_server(_ loop: OpaquePointer?, _ function: aios_client_connected_fn?,
                                   _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?,
                                   _ path: UnsafePointer<CChar>?, _ size: Int,
                                   _ options: UnsafePointer<aios_server_options_t>?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  let path = string(path)
  let parsed: ServerOptions
  do { parsed = try serverOptions(options) } catch { return statusCode(of: error) }
  return startServer(loop, function, arg, destructor, size, out) { loop, makeProtocol, done in
    try Server.unix(loop: loop, path: path, options: parsed, makeProtocol: makeProtocol, done: done)
  }
}

@_cdecl("aios_stream_new")
public func aios_stream_new(_ loop: OpaquePointer?, _ size: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try loop.checkUsable()
    try give(CStream(reader: try StreamReader(loop: loop, limit: try limit(size)), writer: nil), .stream, out)
  }
}

@inline(__always)
private func withStream<R>(_ p: OpaquePointer?, _ body: (CStream) throws -> R) throws -> R {
  try withObject(p, .stream, as: CStream.self, body)
}

/// Starts a read and hands its future to C.
private func read(_ stream: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                  _ request: (StreamReader) throws -> ReadRequest?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withStream(stream) { stream in
      let reader = stream.reader
      try reader.loop.checkUsable()
      guard let request = try request(reader) else {
        // A read of nothing: empty bytes at once, unless the stream failed.
        if let exception = reader.exception { throw exception }
        try give(AnyFuture.done(on: reader.loop, value: makeBytes(UnsafeRawBufferPointer(start: nil, count: 0)),
                                destructor: aios_bytes_free), .future, out)
        return
      }
      let operation = try StreamReadOperation(reader: reader, request: request, make: makeBytes,
                                              destructor: aios_bytes_free)
      do {
        try give(operation, .future, out)
      } catch {
        operation.cancel()
        throw error
      }
    }
  }
}

@_cdecl("aios_stream_read")
public func aios_stream_read(_ stream: OpaquePointer?, _ n: Int64, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  read(stream, out) { _ in
    if n == 0 { return nil }
    return n < 0 ? .toEOF : .upTo(Int(clamping: n))
  }
}

@_cdecl("aios_stream_readline")
public func aios_stream_readline(_ stream: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  read(stream, out) { _ in .line }
}

@_cdecl("aios_stream_readexactly")
public func aios_stream_readexactly(_ stream: OpaquePointer?, _ n: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  read(stream, out) { _ in
    // A size_t of 2^63 or more arrives negative: as asyncio would, the read
    // waits for more than can come, so it ends at EOF (IncompleteReadError).
    n == 0 ? nil : .exactly(n < 0 ? Int.max : n)
  }
}

@_cdecl("aios_stream_readuntil")
public func aios_stream_readuntil(_ stream: OpaquePointer?, _ separators: UnsafePointer<aios_buf_t>?, _ count: Int,
                                  _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  read(stream, out) { _ in
    .until(try StreamReader.separators(try buffers(separators, count).map { [UInt8]($0) }))
  }
}

@_cdecl("aios_stream_at_eof")
public func aios_stream_at_eof(_ stream: OpaquePointer?) -> Int32 {
  count { try withStream(stream) { $0.reader.atEOF ? 1 : 0 } }
}

@_cdecl("aios_stream_feed_data")
public func aios_stream_feed_data(_ stream: OpaquePointer?, _ data: UnsafeRawPointer?, _ length: Int) -> Int32 {
  status {
    try withStream(stream) { stream in
      try stream.reader.loop.checkUsable()
      try stream.reader.feedData(try bytes(data, length))
    }
  }
}

@_cdecl("aios_stream_feed_eof")
public func aios_stream_feed_eof(_ stream: OpaquePointer?) -> Int32 {
  status {
    try withStream(stream) { stream in
      guard !stream.reader.eof else { throw InvalidStateError("feed_eof after feed_eof") }
      stream.reader.feedEOF()
    }
  }
}

@_cdecl("aios_stream_write")
public func aios_stream_write(_ stream: OpaquePointer?, _ data: UnsafeRawPointer?, _ length: Int) -> Int32 {
  status { try withStream(stream) { try $0.connectedWriter().write(try bytes(data, length)) } }
}

@_cdecl("aios_stream_writev")
public func aios_stream_writev(_ stream: OpaquePointer?, _ bufs: UnsafePointer<aios_buf_t>?, _ count: Int) -> Int32 {
  status { try withStream(stream) { try $0.connectedWriter().transport.write(vector: try buffers(bufs, count)) } }
}

@_cdecl("aios_stream_drain")
public func aios_stream_drain(_ stream: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try withStream(stream) { try $0.connectedWriter().drainFuture() }, .future, out)
  }
}

@_cdecl("aios_stream_write_eof")
public func aios_stream_write_eof(_ stream: OpaquePointer?) -> Int32 {
  status { try withStream(stream) { try $0.connectedWriter().writeEOF() } }
}

@_cdecl("aios_stream_can_write_eof")
public func aios_stream_can_write_eof(_ stream: OpaquePointer?) -> Int32 {
  count { try withStream(stream) { try $0.connectedWriter().canWriteEOF ? 1 : 0 } }
}

@_cdecl("aios_stream_close")
public func aios_stream_close(_ stream: OpaquePointer?) -> Int32 {
  status { try withStream(stream) { try $0.connectedWriter().close() } }
}

@_cdecl("aios_stream_is_closing")
public func aios_stream_is_closing(_ stream: OpaquePointer?) -> Int32 {
  count { try withStream(stream) { try $0.connectedWriter().isClosing ? 1 : 0 } }
}

@_cdecl("aios_stream_wait_closed")
public func aios_stream_wait_closed(_ stream: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try withStream(stream) { try $0.connectedWriter().closedFuture() }, .future, out)
  }
}

@_cdecl("aios_stream_get_transport")
public func aios_stream_get_transport(_ stream: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try withStream(stream) { try $0.connectedWriter().transport }, .transport, out)
  }
}

@_cdecl("aios_stream_ref")
public func aios_stream_ref(_ stream: OpaquePointer?) -> Int32 { refObject(stream, .stream) }

@_cdecl("aios_stream_unref")
public func aios_stream_unref(_ stream: OpaquePointer?) -> Int32 { unrefObject(stream, .stream) }
