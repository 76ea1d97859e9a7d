// asyncio's streams (streams.py): StreamReader, StreamWriter, the protocol
// between them and a transport, open_connection and start_server.
//
// A read is a request the reader tries against its buffer (`attempt`); when
// the buffer cannot answer yet, the reader waits for data on one waiter
// future, as asyncio's _wait_for_data does, and tries again. Swift's async
// reads loop over that; the C ABI's reads are operations (futures) that do
// the same, so both share every rule of the buffer.
internal import CAioSwift
import Glibc

/// asyncio's default stream buffer limit.
public let defaultStreamLimit = 64 * 1024

/// What a read asks for.
package enum ReadRequest {
  case upTo(Int)  // read(n), n > 0
  case toEOF  // read(-1)
  case exactly(Int)
  case line
  case until([[UInt8]])  // sorted by length, shortest first

  var name: String {
    switch self {
    case .upTo, .toEOF: return "read"
    case .exactly: return "readexactly"
    case .line: return "readline"
    case .until: return "readuntil"
    }
  }
}

/// The progress of one read across its waits.
package struct ReadProgress {
  var offset = 0
  var gathered: [UInt8] = []
  package init() {}
}

/// A byte buffer consumed from the front, grown at the back.
struct ByteBuffer {
  private(set) var storage: UnsafeMutableRawPointer?
  private var capacity = 0
  private var start = 0
  private var end = 0

  var count: Int { end - start }
  var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage.map { $0 + start }, count: count) }

  mutating func append(_ data: UnsafeRawBufferPointer) {
    guard data.count > 0 else { return }
    if end + data.count > capacity {
      if count + data.count <= capacity / 2 || (start > 0 && count + data.count <= capacity) {
        // Slide what is left to the front rather than grow.
        if count > 0 { memmove(storage!, storage! + start, count) }
      } else {
        // Small to start: an idle connection keeps what its last message needed.
        let newCapacity = max(256, max(capacity * 2, count + data.count))
        let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        if count > 0 { grown.copyMemory(from: storage! + start, byteCount: count) }
        storage?.deallocate()
        storage = grown
        capacity = newCapacity
      }
      end = count
      start = 0
    }
    (storage! + end).copyMemory(from: data.baseAddress!, byteCount: data.count)
    end += data.count
  }

  mutating func consume(_ n: Int) {
    start += n
    if start == end { start = 0; end = 0 }
  }

  mutating func clear() { start = 0; end = 0 }

  func release() { storage?.deallocate() }

  /// Where `needle` starts at or after `from`, if it does.
  func find(_ needle: [UInt8], from: Int) -> Int? {
    let haystack = bytes
    guard needle.count > 0, haystack.count - from >= needle.count else { return nil }
    guard let base = haystack.baseAddress else { return nil }
    let first = Int32(needle[0])
    let last = haystack.count - needle.count  // the last place a match can start
    var position = from
    return needle.withUnsafeBytes { n -> Int? in
      while position <= last {
        guard let hit = memchr(base + position, first, last - position + 1) else { return nil }
        let at = base.distance(to: UnsafeRawPointer(hit))
        if memcmp(base + at, n.baseAddress!, n.count) == 0 { return at }
        position = at + 1
      }
      return nil
    }
  }
}

public final class StreamReader {
  public let loop: Loop
  public let limit: Int
  private var buffer = ByteBuffer()
  public private(set) var eof = false
  public private(set) var exception: (any Error)?
  private var waiter: AnyFuture?
  /// A read of the C ABI waits as the reader's waiter itself (one future
  /// less per read); held, as `waiter` is.
  private var waitingRead: StreamReadOperation?
  package private(set) var transport: StreamTransport?
  private var paused = false

  public init(loop: Loop, limit: Int = defaultStreamLimit) throws {
    guard limit > 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "Limit cannot be <= 0") }
    self.loop = loop
    self.limit = limit
  }

  deinit {
    liveness.isAlive = false
    waitingRead?.waiterVanished()
    buffer.release()
  }

  /// Cleared when the reader goes: its pending reads (which do not retain
  /// it) check it.
  let liveness = Liveness()

  /// How many bytes wait in the buffer.
  public var bufferedCount: Int { buffer.count }

  /// asyncio's at_eof: EOF was fed and the buffer is empty.
  public var atEOF: Bool { eof && buffer.count == 0 }

  package func setTransport(_ transport: StreamTransport) { self.transport = transport }

  /// asyncio's feed_data. Refused after feed_eof.
  public func feedData(_ data: UnsafeRawBufferPointer) throws {
    guard !eof else { throw InvalidStateError("feed_data after feed_eof") }
    guard data.count > 0 else { return }
    buffer.append(data)
    wakeWaiter()
    if let transport, !paused, buffer.count > 2 * limit {
      transport.pauseReading()
      paused = true
    }
  }

  public func feedEOF() {
    eof = true
    wakeWaiter()
  }

  /// asyncio's set_exception: every read from now on fails with `error`.
  public func setException(_ error: any Error) {
    exception = error
    if let waiter {
      self.waiter = nil
      if !waiter.isDone { try? waiter.setError(error) }
    }
    // The read finds the exception when it tries again.
    wakeWaitingRead()
  }

  private func wakeWaiter() {
    wakeWaitingRead()
    guard let waiter else { return }
    self.waiter = nil
    if !waiter.isDone { try? waiter.setCResult(nil, destructor: nil) }
  }

  private func wakeWaitingRead() {
    guard let read = waitingRead else { return }
    waitingRead = nil
    read.wakeWaiter()  // nothing if it was cancelled meanwhile
  }

  private func maybeResumeTransport() {
    if paused && buffer.count <= limit {
      paused = false
      transport?.resumeReading()
    }
  }

  /// asyncio's _wait_for_data: the future more data (or EOF) completes.
  package func waitForData(_ request: ReadRequest) throws -> AnyFuture {
    try prepareToWait(request)
    let future = RawFuture(loop: loop)
    waiter = future
    return future
  }

  /// _wait_for_data for a read of the C ABI, which is its own waiter.
  fileprivate func waitForData(_ request: ReadRequest, as read: StreamReadOperation) throws {
    try prepareToWait(request)
    waitingRead = read
    read.waitAsWaiter()
  }

  private func prepareToWait(_ request: ReadRequest) throws {
    if waiter != nil || waitingRead != nil {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue,
                         "\(request.name)() called while another coroutine is already waiting for incoming data")
    }
    if paused {
      paused = false
      transport?.resumeReading()
    }
  }

  /// The waiter `future` is no longer awaited (it finished or its read was cancelled).
  package func doneWaiting(_ future: AnyFuture) {
    if waiter === future { waiter = nil }
    if waitingRead === future { waitingRead = nil }
  }

  /// Tries to answer `request` from the buffer: its bytes (through `make`),
  /// nil to wait for more data, or the error the read raises.
  package func attempt<R>(_ request: ReadRequest, _ progress: inout ReadProgress,
                          _ make: (UnsafeRawBufferPointer) -> R) throws -> R? {
    if let exception { throw exception }
    switch request {
    case .upTo(let n):
      if buffer.count == 0 && !eof { return nil }
      return take(min(n, buffer.count), make)
    case .toEOF:
      if buffer.count > 0 {
        progress.gathered.append(contentsOf: buffer.bytes)
        buffer.clear()
        maybeResumeTransport()
      }
      guard eof else { return nil }
      return progress.gathered.withUnsafeBytes { make($0) }
    case .exactly(let n):
      if buffer.count >= n { return take(n, make) }
      guard eof else { return nil }
      let partial = [UInt8](buffer.bytes)
      buffer.clear()
      throw IncompleteReadError(partial: partial, expected: n)
    case .line:
      do {
        return try readUntil([[0x0a]], &progress, make)
      } catch let error as IncompleteReadError {
        return error.partial.withUnsafeBytes { make($0) }
      } catch let error as LimitOverrunError {
        // asyncio's readline drops the line that overran the limit.
        if let found = buffer.find([0x0a], from: error.consumed), found == error.consumed {
          buffer.consume(error.consumed + 1)
        } else {
          buffer.clear()
        }
        maybeResumeTransport()
        throw error
      }
    case .until(let separators):
      return try readUntil(separators, &progress, make)
    }
  }

  private func take<R>(_ n: Int, _ make: (UnsafeRawBufferPointer) -> R) -> R {
    let result = make(UnsafeRawBufferPointer(rebasing: buffer.bytes[..<n]))
    buffer.consume(n)
    maybeResumeTransport()
    return result
  }

  private func readUntil<R>(_ separators: [[UInt8]], _ progress: inout ReadProgress,
                            _ make: (UnsafeRawBufferPointer) -> R) throws -> R? {
    let shortest = separators.first!.count
    let longest = separators.last!.count
    let length = buffer.count
    if length - progress.offset >= shortest {
      var match: (start: Int, end: Int)?
      for separator in separators {
        if let found = buffer.find(separator, from: progress.offset) {
          let end = found + separator.count
          if match == nil || end < match!.end { match = (found, end) }
        }
      }
      if let match {
        if match.start > limit {
          throw LimitOverrunError("Separator is found, but chunk is longer than limit", consumed: match.start)
        }
        return take(match.end, make)
      }
      progress.offset = max(0, length + 1 - longest)
      if progress.offset > limit {
        throw LimitOverrunError("Separator is not found, and chunk exceed the limit", consumed: progress.offset)
      }
    }
    guard eof else { return nil }
    let partial = [UInt8](buffer.bytes)
    buffer.clear()
    throw IncompleteReadError(partial: partial, expected: nil)
  }

  /// The separators of readuntil, checked and sorted as asyncio 3.13 does.
  package static func separators(_ list: [[UInt8]]) throws -> [[UInt8]] {
    guard !list.isEmpty else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "Separator should contain at least one element") }
    guard !list.contains(where: \.isEmpty) else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "Separator should be at least one-byte string")
    }
    return list.sorted { $0.count < $1.count }
  }

  // MARK: Swift API

  private func perform(_ request: ReadRequest) async throws -> [UInt8] {
    var progress = ReadProgress()
    while true {
      if let bytes = try attempt(request, &progress, { [UInt8]($0) }) { return bytes }
      let waiter = try waitForData(request)
      defer { doneWaiting(waiter) }
      try await waiter.wait()
    }
  }

  /// asyncio's read(n): up to n bytes (at least one unless at EOF); n < 0
  /// reads to EOF.
  public func read(_ n: Int = -1) async throws -> [UInt8] {
    if n == 0 {
      if let exception { throw exception }
      return []
    }
    return try await perform(n < 0 ? .toEOF : .upTo(n))
  }

  /// asyncio's readline.
  public func readLine() async throws -> [UInt8] { try await perform(.line) }

  /// asyncio's readexactly.
  public func readExactly(_ n: Int) async throws -> [UInt8] {
    guard n >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "readexactly size can not be less than zero") }
    if n == 0 {
      if let exception { throw exception }
      return []
    }
    return try await perform(.exactly(n))
  }

  /// asyncio's readuntil, with one separator or several (3.13).
  public func readUntil(_ separator: [UInt8]) async throws -> [UInt8] { try await readUntil(anyOf: [separator]) }

  public func readUntil(anyOf separators: [[UInt8]]) async throws -> [UInt8] {
    try await perform(.until(try StreamReader.separators(separators)))
  }

  /// The lines until EOF (asyncio's `async for line in reader`).
  public var lines: Lines { Lines(reader: self) }

  /// Chunks of at most `size` bytes until EOF.
  public func chunks(of size: Int = defaultStreamLimit) -> Chunks { Chunks(reader: self, size: size) }

  public struct Lines: AsyncSequence {
    public typealias Element = [UInt8]
    let reader: StreamReader
    public struct AsyncIterator: AsyncIteratorProtocol {
      let reader: StreamReader
      public mutating func next() async throws -> [UInt8]? {
        let line = try await reader.readLine()
        return line.isEmpty ? nil : line
      }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: reader) }
  }

  public struct Chunks: AsyncSequence {
    public typealias Element = [UInt8]
    let reader: StreamReader
    let size: Int
    public struct AsyncIterator: AsyncIteratorProtocol {
      let reader: StreamReader
      let size: Int
      public mutating func next() async throws -> [UInt8]? {
        let chunk = try await reader.read(size)
        return chunk.isEmpty ? nil : chunk
      }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: reader, size: Swift.max(1, size)) }
  }
}

/// A read of the C ABI as a future: tries the reader, waits for data,
/// tries again; its result is what `make` builds from the bytes.
package final class StreamReadOperation: Operation {
  /// Not retained, as an operation does not retain its primitive: the
  /// reader owns its waiter, which owns this operation, so a reader nobody
  /// holds goes with its pending read (freed unfinished, the waiter tells
  /// the operation, which then fails, see Operation.innerVanished).
  private let readerReference: Unmanaged<StreamReader>
  private let readerLiveness: Liveness
  /// nil once the reader is gone (a callback already scheduled may still run).
  private var reader: StreamReader? { readerLiveness.isAlive ? readerReference.takeUnretainedValue() : nil }
  private let request: ReadRequest
  private var progress = ReadProgress()
  private let make: (UnsafeRawBufferPointer) -> UnsafeMutableRawPointer?
  private let destructor: CDestructor

  /// Starts the read: the operation may be done when this returns.
  package init(reader: StreamReader, request: ReadRequest,
               make: @escaping (UnsafeRawBufferPointer) -> UnsafeMutableRawPointer?, destructor: CDestructor) throws {
    readerReference = Unmanaged.passUnretained(reader)
    readerLiveness = reader.liveness
    self.request = request
    self.make = make
    self.destructor = destructor
    super.init(loop: reader.loop)
    // A read that must wait while another one waits is refused at once.
    if !tryReader() { try reader.waitForData(request, as: self) }
  }

  /// Tries the reader: true when the operation is done, with the bytes or
  /// the read's error; false when it must wait for data.
  private func tryReader() -> Bool {
    guard let reader else {
      completeOrphaned()
      return true
    }
    do {
      guard let value = try reader.attempt(request, &progress, make) else { return false }
      storeCResult(value, destructor: destructor)
      completeReturning()
    } catch {
      completeThrowing(error)
    }
    return true
  }

  override func advance(_ inner: AnyFuture) {
    reader?.doneWaiting(self)
    let cancelled = cancellation(of: self)
    leaveAsWaiter()
    if let cancelled {
      completeThrowing(cancelled)
      return
    }
    if tryReader() { return }
    do {
      try reader!.waitForData(request, as: self)
    } catch {
      completeThrowing(error)
    }
  }

  override var typeName: String { "StreamRead" }
}

/// asyncio's StreamReaderProtocol with FlowControlMixin: feeds a reader
/// from a transport, tracks pause_writing for drain, and runs a server's
/// client callback.
package final class StreamReaderProtocol: StreamProtocol, ReplaceableProtocol {
  let loop: Loop
  package let reader: StreamReader
  package private(set) var writer: StreamWriter?
  private let clientConnected: ((StreamReader, StreamWriter) -> AnyFuture?)?
  private var writingPaused = false
  private var drainWaiters: [AnyFuture] = []
  package private(set) var connectionLost = false
  private var lostError: (any Error)?
  private var closedWaiters: [AnyFuture] = []
  private var clientTask: AnyFuture?

  package init(reader: StreamReader, clientConnected: ((StreamReader, StreamWriter) -> AnyFuture?)? = nil) {
    loop = reader.loop
    self.reader = reader
    self.clientConnected = clientConnected
  }

  package func connectionMade(_ transport: StreamTransport) {
    reader.setTransport(transport)
    let writer = StreamWriter(transport: transport, protocol: self)
    self.writer = writer
    guard let clientConnected, let task = clientConnected(reader, writer) else { return }
    clientTask = task
    task.addDoneCallback { [weak transport] done in
      // asyncio 3.13: a cancelled task closes its connection too, unreported.
      if done.isCancelled {
        transport?.close()
        return
      }
      guard let error = try? done.exception() else { return }
      done.loop.callExceptionHandler(ExceptionContext(message: "Unhandled exception in client_connected_cb",
                                                      error: error, future: done))
      transport?.close()
    }
  }

  package func connectionLost(_ error: (any Error)?) {
    if let error { reader.setException(error) } else { reader.feedEOF() }
    connectionLost = true
    lostError = error
    let waiters = closedWaiters
    closedWaiters = []
    for waiter in waiters where !waiter.isDone { finishClosedWaiter(waiter) }
    if writingPaused {
      let waiters = drainWaiters
      drainWaiters = []
      for waiter in waiters where !waiter.isDone {
        if let error { try? waiter.setError(error) } else { try? waiter.setCResult(nil, destructor: nil) }
      }
    }
    writer = nil
    clientTask = nil
  }

  package func dataReceived(_ data: UnsafeRawBufferPointer) { try? reader.feedData(data) }

  /// Replaced by set_protocol: the writer and this protocol hold each other
  /// until connection_lost, which will not come here now.
  package func wasReplaced() {
    writer = nil
    clientTask = nil
  }

  package func eofReceived() -> Bool {
    reader.feedEOF()
    return true
  }

  package func pauseWriting() { writingPaused = true }

  package func resumeWriting() {
    writingPaused = false
    let waiters = drainWaiters
    drainWaiters = []
    for waiter in waiters where !waiter.isDone { try? waiter.setCResult(nil, destructor: nil) }
  }

  /// asyncio's _drain_helper as a future.
  fileprivate func drainFuture() throws -> AnyFuture {
    if connectionLost { throw OSError(errno: ECONNRESET, "Connection lost") }
    if !writingPaused { return loop.doneFuture }
    let waiter = RawFuture(loop: loop)
    drainWaiters.append(waiter)
    return waiter
  }

  private func finishClosedWaiter(_ waiter: AnyFuture) {
    if let lostError {
      try? waiter.setError(lostError)
      waiter.markErrorRetrieved()  // asyncio's _closed retrieves it too
    } else {
      try? waiter.setCResult(nil, destructor: nil)
    }
  }

  /// A future done once the connection is lost.
  fileprivate func closedFuture() -> AnyFuture {
    let waiter = RawFuture(loop: loop)
    if connectionLost { finishClosedWaiter(waiter) } else { closedWaiters.append(waiter) }
    return waiter
  }
}

public final class StreamWriter {
  public let transport: StreamTransport
  private let streamProtocol: StreamReaderProtocol

  init(transport: StreamTransport, protocol: StreamReaderProtocol) {
    self.transport = transport
    streamProtocol = `protocol`
  }

  public var loop: Loop { transport.loop }

  public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try transport.write($0) } }
  public func write(_ bytes: UnsafeRawBufferPointer) throws { try transport.write(bytes) }
  public func writeLines(_ pieces: [[UInt8]]) throws {
    try withBuffers(pieces) { try transport.write(vector: $0) }
  }
  public func writeEOF() { transport.writeEOF() }
  public var canWriteEOF: Bool { transport.canWriteEOF }
  public func close() { transport.close() }
  public var isClosing: Bool { transport.isClosing }

  /// asyncio's drain as a future: done at once unless writing is paused.
  package func drainFuture() throws -> AnyFuture {
    if let exception = streamProtocol.reader.exception { return try failed(exception) }
    if transport.isClosing && !streamProtocol.connectionLost {
      // asyncio yields once so that connection_lost may run first.
      let future = RawFuture(loop: loop)
      try loop.callSoon { [streamProtocol] in
        guard !future.isDone else { return }
        do {
          let next = try streamProtocol.drainFuture()
          if next.isDone { try? future.setCResult(nil, destructor: nil) } else {
            next.addDoneCallback { done in
              guard !future.isDone else { return }
              if let error = done.error { try? future.setError(error) } else { try? future.setCResult(nil, destructor: nil) }
            }
          }
        } catch {
          try? future.setError(error)
        }
      }
      return future
    }
    do {
      return try streamProtocol.drainFuture()
    } catch {
      return try failed(error)
    }
  }

  private func failed(_ error: any Error) throws -> AnyFuture {
    let future = RawFuture(loop: loop)
    try future.setError(error)
    return future
  }

  public func drain() async throws { try await drainFuture().wait() }

  package func closedFuture() -> AnyFuture { streamProtocol.closedFuture() }

  /// asyncio's wait_closed.
  public func waitClosed() async throws { try await closedFuture().wait() }
}

/// Runs `body` with the pieces as buffers.
func withBuffers<R>(_ pieces: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
  var buffers: [UnsafeRawBufferPointer] = []
  buffers.reserveCapacity(pieces.count)
  func nest(_ index: Int) throws -> R {
    if index == pieces.count { return try body(buffers) }
    return try pieces[index].withUnsafeBytes { piece in
      buffers.append(piece)
      return try nest(index + 1)
    }
  }
  return try nest(0)
}

// MARK: open_connection and start_server

extension Loop {
  /// asyncio's open_connection.
  public func openConnection(host: String?, port: Int, limit: Int = defaultStreamLimit,
                             options: ConnectOptions = ConnectOptions()) async throws -> (StreamReader, StreamWriter) {
    let reader = try StreamReader(loop: self, limit: limit)
    let streamProtocol = StreamReaderProtocol(reader: reader)
    _ = try await createConnection({ streamProtocol }, host: host, port: port, options: options)
    return (reader, streamProtocol.writer!)
  }

  /// asyncio's open_unix_connection.
  public func openUnixConnection(path: String, limit: Int = defaultStreamLimit) async throws
    -> (StreamReader, StreamWriter) {
    let reader = try StreamReader(loop: self, limit: limit)
    let streamProtocol = StreamReaderProtocol(reader: reader)
    _ = try await createUnixConnection({ streamProtocol }, path: path)
    return (reader, streamProtocol.writer!)
  }

  /// A protocol factory for a stream server whose connections go to
  /// `handler` as tasks.
  private func streamFactory(limit: Int, handler: @escaping (StreamReader, StreamWriter) async throws -> Void)
    -> () throws -> any StreamProtocol {
    { [unowned self] in
      StreamReaderProtocol(reader: try StreamReader(loop: self, limit: limit)) { reader, writer in
        try? self.createTask { try await handler(reader, writer) }
      }
    }
  }

  /// asyncio's start_server: each connection runs `handler` in a task of its own.
  public func startServer(host: String?, port: Int, limit: Int = defaultStreamLimit,
                          options: ServerOptions = ServerOptions(),
                          handler: @escaping (StreamReader, StreamWriter) async throws -> Void) async throws -> Server {
    try await createServer(streamFactory(limit: limit, handler: handler), host: host, port: port, options: options)
  }

  /// asyncio's start_unix_server.
  public func startUnixServer(path: String?, limit: Int = defaultStreamLimit, options: ServerOptions = ServerOptions(),
                              handler: @escaping (StreamReader, StreamWriter) async throws -> Void) async throws -> Server {
    try await createUnixServer(streamFactory(limit: limit, handler: handler), path: path, options: options)
  }
}
