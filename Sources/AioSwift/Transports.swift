// asyncio's stream transports and protocols (transports.py, protocols.py,
// and the socket transport of selector_events.py) on libuv's TCP and pipe
// handles.
//
// Reading: libuv reads into the loop's read arena (or, for a buffered
// protocol, into the protocol's own memory) and the protocol sees the bytes
// in the same call. Writing: the socket is tried at once (uv_try_write) and
// only what it did not take is copied and queued; at most one uv_write is in
// flight, and what is queued meanwhile goes out in the next one, as a
// vector. Closing is libuv's: one uv_close, then connection_lost exactly
// once from its callback, and the handle's memory goes with the transport.
internal import CAioSwift
internal import CLibUV
import Glibc

/// asyncio.Protocol for streams. Every method has a default that does nothing.
public protocol StreamProtocol: AnyObject {
  /// The connection is up.
  func connectionMade(_ transport: StreamTransport)
  /// Bytes arrived; the buffer is valid for this call only.
  func dataReceived(_ data: UnsafeRawBufferPointer)
  /// The peer sent EOF. Return true to keep the transport open for writing.
  func eofReceived() -> Bool
  /// The connection is gone: nil for a close or an EOF, else the reason.
  func connectionLost(_ error: (any Error)?)
  /// The write buffer went above its high-water mark.
  func pauseWriting()
  /// The write buffer went down to its low-water mark.
  func resumeWriting()
}

extension StreamProtocol {
  public func connectionMade(_ transport: StreamTransport) {}
  public func dataReceived(_ data: UnsafeRawBufferPointer) {}
  public func eofReceived() -> Bool { false }
  public func connectionLost(_ error: (any Error)?) {}
  public func pauseWriting() {}
  public func resumeWriting() {}
}

/// asyncio.BufferedProtocol: bytes are received straight into the
/// protocol's memory; dataReceived is not called.
public protocol BufferedStreamProtocol: StreamProtocol {
  /// Memory to receive into (at least one byte), valid until bufferUpdated.
  func getBuffer(sizeHint: Int) throws -> UnsafeMutableRawBufferPointer
  /// `count` bytes were written at the start of the last buffer.
  func bufferUpdated(_ count: Int)
}

/// A protocol of the library's own that holds references it must let go of
/// when set_protocol replaces it (it gets no connection_lost then).
package protocol ReplaceableProtocol: AnyObject {
  func wasReplaced()
}

/// A buffered protocol of the library's own whose buffers are lent to it
/// (a binding's memory): told when the read it gave a buffer for got no
/// bytes (none were waiting, the stream ended or failed), so that the
/// buffer goes back at once.
package protocol LentBufferProtocol: BufferedStreamProtocol {
  func bufferUnused()
}

/// A protocol through which one of the library's objects follows its
/// transport (a subprocess its pipes): set_protocol may not replace it,
/// or that object would never learn the transport's end.
protocol KeptProtocol: AnyObject {}

/// asyncio's default write-buffer limits.
let defaultHighWater = 64 * 1024

/// asyncio's _FlowControlMixin: the write-buffer limits, and whether the
/// protocol was told to pause.
struct WriteFlowControl {
  private(set) var high = defaultHighWater
  private(set) var low = defaultHighWater / 4
  private var paused = false

  /// set_write_buffer_limits: high defaults to 4 * low (or 64 KiB), low to high / 4.
  mutating func setLimits(high: Int?, low: Int?) throws {
    let high = high ?? (low.map { $0.multipliedReportingOverflow(by: 4).overflow ? Int.max : 4 * $0 } ?? defaultHighWater)
    let low = low ?? high / 4
    guard high >= low, low >= 0 else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "high (\(high)) must be >= low (\(low)) must be >= 0")
    }
    self.high = high
    self.low = low
  }

  /// Whether pause_writing is due now that `size` bytes are buffered.
  mutating func pauses(at size: Int) -> Bool {
    guard !paused, size > high else { return false }
    paused = true
    return true
  }

  /// Whether resume_writing is due now that `size` bytes are buffered.
  mutating func resumes(at size: Int) -> Bool {
    guard paused, size <= low else { return false }
    paused = false
    return true
  }
}

public final class StreamTransport: CustomStringConvertible {
  /// What a transport carries: a socket, or one end of a pipe (asyncio's
  /// _UnixReadPipeTransport and _UnixWritePipeTransport).
  public enum Kind: Sendable { case tcp, unix, readPipe, writePipe }

  public let loop: Loop
  private let handle: UnsafeMutableRawPointer
  private var stream: UnsafeMutablePointer<uv_stream_t> { handle.assumingMemoryBound(to: uv_stream_t.self) }
  public let kind: Kind
  public var isUnix: Bool { kind != .tcp }
  public var isPipe: Bool { kind == .readPipe || kind == .writePipe }
  /// A write pipe's watch for its reader going away (see watchForHangUp).
  private var hangUpWatch: UnsafeMutablePointer<uv_poll_t>?
  private var hangUpFd: Int32 = -1
  private var currentProtocol: (any StreamProtocol)?
  private var bufferedProtocol: (any BufferedStreamProtocol)?
  /// The same protocol when it is lent its buffers: cast once, when it is set.
  private var lendingProtocol: (any LentBufferProtocol)?

  /// close() or abort() was called, or the connection was lost.
  public private(set) var isClosing = false
  /// uv_close was called: the handle may not be used any more.
  private var handleClosed = false
  /// connection_lost was delivered.
  public private(set) var isLost = false
  private var lostError: (any Error)?
  /// The error connection_lost is to get, from when the transport starts
  /// closing with one (a failed write, a reset) until connection_lost runs.
  public var closingError: (any Error)? { lostError }
  /// asyncio's _conn_lost: writes after it are dropped.
  private var connectionLostCount = 0
  private var readingPaused = false
  private var readingStarted = false
  /// Reading waits until a binding took this iteration's batch of events.
  private var batchSuspended = false
  /// The loop's iteration in which the stream read for the batch.
  private var suspendedIn = 0
  /// The next transport waiting for the same take (the batch's list).
  package var nextSuspended: StreamTransport?
  private var eofReceivedFlag = false
  /// The loop's iteration whose poll read the last bytes.
  private var lastReadIn = -1
  /// The end, seen in the poll that read the last bytes: held an iteration.
  private var eofHeld = false
  private var eofWritten = false
  private var shutdownDone = false
  /// The error a buffered protocol's getBuffer threw.
  private var bufferError: (any Error)?
  /// Inside getBuffer libuv is between its allocation and its read: what
  /// the protocol asks for then (pause, close, abort) waits until after.
  private var inGetBuffer = false
  /// set_protocol's protocol, when it was called from get_buffer.
  private var protocolAfterRead: (any StreamProtocol)?
  private enum Deferred { case none, pause, close, abort }
  private var deferred = Deferred.none

  // The write side: chunks waiting, and the one uv_write in flight.
  /// A chunk waiting to be sent: the transport's own copy, or memory lent
  /// by the writer, which `lender` lets go of when the chunk is dropped.
  private struct Chunk {
    let bytes: UnsafeRawBufferPointer
    let lender: AnyObject?
    func free() { if lender == nil { UnsafeMutableRawBufferPointer(mutating: bytes).deallocate() } }
  }
  private var queued: [Chunk] = []
  private var queuedBytes = 0
  private var inflight: [Chunk] = []
  /// The uv_write request, made at the first write the socket did not take
  /// at once (most writes are taken at once: an idle connection keeps none).
  private var writeRequest: UnsafeMutablePointer<uv_write_t>?
  private var writing = false
  private var flow = WriteFlowControl()
  public var highWater: Int { flow.high }
  public var lowWater: Int { flow.low }

  /// A sendfile under way (Sockets.swift): until it ends the transport
  /// does not read and refuses writes.
  package private(set) var sendfileFuture: SocketFuture?
  /// The sendfile's start, once the write buffer is empty.
  private var sendfileStart: (() -> Void)?
  private var readingAfterSendfile = false

  /// Told when the connection is gone (a server counting its clients).
  package var onLost: ((StreamTransport) -> Void)?
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  /// The transport's own reference while its handle is open.
  private var keepAlive: Unmanaged<StreamTransport>?

  /// Wraps an initialized, connected uv_tcp_t or uv_pipe_t (allocated with
  /// StreamTransport.allocateHandle), which the transport now owns.
  package convenience init(loop: Loop, handle: UnsafeMutableRawPointer, isUnix: Bool) {
    self.init(loop: loop, handle: handle, kind: isUnix ? .unix : .tcp)
  }

  /// Wraps an initialized uv_tcp_t or uv_pipe_t of the given kind.
  package init(loop: Loop, handle: UnsafeMutableRawPointer, kind: Kind) {
    self.loop = loop
    self.handle = handle
    self.kind = kind
    LiveObjects.transports.add(1, ordering: .relaxed)
    keepAlive = Unmanaged.passRetained(self)
    stream.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    if kind == .tcp { uv_tcp_nodelay(handle.assumingMemoryBound(to: uv_tcp_t.self), 1) }
    loop.ioOpened(self) { ($0 as! StreamTransport).forceClose(nil) }
  }

  deinit {
    for chunk in queued { chunk.free() }
    for chunk in inflight { chunk.free() }
    writeRequest?.deallocate()
    handle.deallocate()
    LiveObjects.transports.subtract(1, ordering: .relaxed)
  }

  /// Memory for a uv_tcp_t or uv_pipe_t.
  package static func allocateHandle() -> UnsafeMutableRawPointer {
    .allocate(byteCount: max(MemoryLayout<uv_tcp_t>.size, MemoryLayout<uv_pipe_t>.size), alignment: 16)
  }

  // MARK: Protocol

  public var streamProtocol: (any StreamProtocol)? { protocolAfterRead ?? currentProtocol }

  /// asyncio's set_protocol. Refused once the connection is lost. Called
  /// from get_buffer, it takes effect once the read into that buffer is
  /// over: the bytes go to the protocol whose buffer they fill (asyncio
  /// gives the count to the new one, which never gave that buffer), and
  /// the old protocol is let go of only then, not while the read still
  /// writes into its memory.
  public func setProtocol(_ newProtocol: any StreamProtocol) throws {
    guard !isLost else { throw InvalidStateError("the connection is lost") }
    guard !(currentProtocol is any KeptProtocol) else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue,
                         "a subprocess's pipe transport keeps its protocol: the subprocess follows the pipe through it")
    }
    if inGetBuffer {
      if let pending = protocolAfterRead as? any ReplaceableProtocol, pending !== newProtocol { pending.wasReplaced() }
      protocolAfterRead = newProtocol
      return
    }
    replaceProtocol(with: newProtocol)
  }

  private func replaceProtocol(with newProtocol: any StreamProtocol) {
    if let replaced = currentProtocol as? any ReplaceableProtocol, replaced !== newProtocol { replaced.wasReplaced() }
    setCurrentProtocol(newProtocol)
  }

  private func setCurrentProtocol(_ newProtocol: any StreamProtocol) {
    currentProtocol = newProtocol
    bufferedProtocol = newProtocol as? any BufferedStreamProtocol
    lendingProtocol = newProtocol as? any LentBufferProtocol
  }

  /// A protocol set while get_buffer ran takes over after the read.
  private func adoptProtocolSetInGetBuffer() {
    if let next = protocolAfterRead.take() { replaceProtocol(with: next) }
  }

  /// Calls connection_made, then starts reading (unless the protocol paused
  /// reading or closed the transport meanwhile).
  package func start(_ streamProtocol: any StreamProtocol) {
    setCurrentProtocol(streamProtocol)
    streamProtocol.connectionMade(self)
    if kind == .writePipe {
      if !isClosing { watchForHangUp() }
    } else if !isClosing && !readingPaused {
      startReading()
    }
  }

  /// asyncio watches a write pipe (a FIFO or a socket) for reading, to see
  /// its reader go away before the next write fails. libuv cannot read a
  /// write-only stream nor poll an fd it streams, so a duplicate of the fd
  /// is polled: the kernel reports an error there once the reader is gone.
  private func watchForHangUp() {
    guard let fd = fileDescriptor else { return }
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFIFO || (info.st_mode & S_IFMT) == S_IFSOCK else {
      return
    }
    let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
    guard copy >= 0 else { return }
    hangUpWatch = startPoll(loop, owning: copy, for: self, transportHungUp)
    hangUpFd = copy
  }

  fileprivate func readerWentAway() {
    stopHangUpWatch()
    // asyncio's _UnixWritePipeTransport._read_ready.
    if writeBufferSize > 0 { forceClose(OSError(errno: EPIPE)) } else { close() }
  }

  private func stopHangUpWatch() {
    guard let poll = hangUpWatch else { return }
    hangUpWatch = nil
    // The duplicate goes with the watch: it keeps the pipe open for writing.
    closePoll(poll, thenClosing: hangUpFd)
  }

  // MARK: Reading

  private func startReading() {
    guard kind != .writePipe, !handleClosed, !eofReceivedFlag, !readingStarted, !batchSuspended else { return }
    let rc = uv_read_start(stream, transportAlloc, transportRead)
    if rc != 0 { fatalError(uvError(rc)); return }
    readingStarted = true
  }

  private func stopReading() {
    guard readingStarted, !handleClosed else { return }
    uv_read_stop(stream)
    readingStarted = false
  }

  public var isReading: Bool { kind != .writePipe && !readingPaused && !isClosing }

  /// One read per take for a protocol that batches its events: until the
  /// batch is taken (resumeAfterBatch) libuv gets no buffer, which ends its
  /// reading of this stream for this poll, so a pause_reading the binding
  /// asks for after seeing the bytes is exact. Reading stays started: a
  /// binding that takes from the loop's callback
  /// (aios_loop_set_io_events_callback) takes before the next poll, and
  /// stopping and starting again would cost two epoll_ctl calls a read. A
  /// poll that comes first (no take) stops reading until the take.
  /// False if it already was (then it is already on the batch's list).
  package func suspendForBatch() -> Bool {
    guard !batchSuspended else { return false }
    batchSuspended = true
    suspendedIn = loop.iterations
    return true
  }

  package func resumeAfterBatch() {
    guard batchSuspended else { return }
    batchSuspended = false
    if eofHeld {
      scheduleHeldEOF()
      return
    }
    if !isClosing && !readingPaused { startReading() }
  }

  public func pauseReading() {
    guard isReading else { return }
    if inGetBuffer {
      if deferred == .none { deferred = .pause }
      return
    }
    readingPaused = true
    stopReading()
  }

  public func resumeReading() {
    guard !isClosing, readingPaused else { return }
    readingPaused = false
    if eofHeld {
      // As asyncio's: the end comes on a later iteration, not in this call.
      scheduleHeldEOF()
      return
    }
    startReading()
  }

  fileprivate func allocate(_ suggested: Int) -> uv_buf_t {
    // No read until the batch is taken (see suspendForBatch).
    if batchSuspended { return uv_buf_init(nil, 0) }
    if let buffered = bufferedProtocol {
      do {
        inGetBuffer = true
        defer { inGetBuffer = false }
        let buffer = try buffered.getBuffer(sizeHint: suggested)
        // A pause, close or abort asked for now: no read; it is done once
        // libuv hands back the empty buffer (UV_ENOBUFS, in didRead).
        if deferred != .none { return uv_buf_init(nil, 0) }
        if let base = buffer.baseAddress, buffer.count > 0 {
          return uv_buf_init(base.assumingMemoryBound(to: CChar.self), UInt32(clamping: buffer.count))
        }
        bufferError = RuntimeError(code: AIOS_EINVAL.rawValue, "get_buffer() returned an empty buffer")
      } catch {
        bufferError = error
      }
      return uv_buf_init(nil, 0)
    }
    let arena = loop.readArena
    return uv_buf_init(arena.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(arena.count))
  }

  fileprivate func didRead(_ count: Int, _ base: UnsafeMutableRawPointer?) {
    if count > 0 {
      lastReadIn = loop.iterations
      if let buffered = bufferedProtocol {
        buffered.bufferUpdated(count)
      } else {
        currentProtocol?.dataReceived(UnsafeRawBufferPointer(start: base, count: count))
      }
      adoptProtocolSetInGetBuffer()
      return
    }
    // UV_ENOBUFS: libuv had no buffer, so none was lent (a batched
    // stream's every take ends its reading that way).
    if count != Int(UV_ENOBUFS.rawValue) { lendingProtocol?.bufferUnused() }
    adoptProtocolSetInGetBuffer()
    if count == Int(UV_EOF.rawValue) {
      if lastReadIn == loop.iterations {
        holdEOF()
      } else {
        receivedEOF()
      }
    } else if count == Int(UV_ENOBUFS.rawValue), batchSuspended {
      // A poll after the one that read, and no take yet: wait for it.
      if loop.iterations != suspendedIn { stopReading() }
    } else if count == Int(UV_ENOBUFS.rawValue), deferred != .none {
      let action = deferred
      deferred = .none
      switch action {
      case .pause: pauseReading()
      case .close: close()
      case .abort: abort()
      case .none: break
      }
    } else if count == Int(UV_ENOBUFS.rawValue), let error = bufferError {
      bufferError = nil
      report("Fatal error: protocol.get_buffer() call failed.", error)
      forceClose(error)
    } else if count < 0 {
      fatalError(uvError(Int32(count)))
    }
  }

  /// libuv reports a peer's hang-up right after a short read (a Unix
  /// socket whose peer closed), in the poll that read the last bytes.
  /// asyncio reads once an iteration and sees the end on the next one, after
  /// what the bytes' callbacks scheduled (a reader task's wake-up), and a
  /// protocol that paused reading on seeing them gets no end until it
  /// resumes: so does this one. For a batched protocol the end is recorded
  /// after the batch with the bytes was taken.
  private func holdEOF() {
    eofHeld = true
    // A batched protocol's bytes wait in a batch not yet taken: the end is
    // released once it is (resumeAfterBatch), so that it comes after what
    // the binding's handling of the bytes scheduled.
    if !batchSuspended { scheduleHeldEOF() }
  }

  private func scheduleHeldEOF() {
    if (try? loop.callSoon({ [self] in releaseHeldEOF() })) == nil { releaseHeldEOF() }
  }

  private func releaseHeldEOF() {
    guard eofHeld, !readingPaused else { return }   // resumeReading releases it
    eofHeld = false
    if !isClosing { receivedEOF() }
  }

  private func receivedEOF() {
    // libuv reports a hang-up after a partial read as EOF without reading
    // again; a reset waiting there is the socket's pending error.
    if !isPipe, let fd = fileDescriptor {
      var pending: Int32 = 0
      var size = socklen_t(MemoryLayout<Int32>.size)
      if getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &size) == 0 && pending != 0 {
        fatalError(OSError(errno: pending))
        return
      }
    }
    eofReceivedFlag = true
    stopReading()
    let keepOpen = currentProtocol?.eofReceived() ?? false
    // A read pipe closes at EOF whatever eof_received answers (asyncio's).
    if !keepOpen || kind == .readPipe { close() }
  }

  // MARK: Writing

  /// Bytes written and not yet sent.
  public var writeBufferSize: Int {
    handleClosed ? queuedBytes : queuedBytes + Int(uv_stream_get_write_queue_size(stream))
  }

  /// asyncio's write: the socket is tried first; only the rest is copied.
  public func write(_ data: UnsafeRawBufferPointer) throws { try write(data, lender: nil) }

  /// write without a copy: what the socket does not take at once stays in
  /// `data`, which must stay valid and unchanged until the transport lets go
  /// of `lender` (once those bytes are sent, or dropped by abort or a lost
  /// connection; at once when the socket took them all).
  public func write(lending data: UnsafeRawBufferPointer, lender: AnyObject) throws {
    try write(data, lender: lender)
  }

  private func write(_ data: UnsafeRawBufferPointer, lender: AnyObject?) throws {
    guard try takesWrite(of: data.count) else { return }
    var rest = data
    if !writing && queued.isEmpty {
      var buffer = uv_buf_init(UnsafeMutableRawPointer(mutating: data.baseAddress!).assumingMemoryBound(to: CChar.self),
                               UInt32(clamping: data.count))
      let sent = Int(uv_try_write(stream, &buffer, 1))
      if sent == data.count { return }
      if sent < 0 && sent != Int(UV_EAGAIN.rawValue) {
        fatalError(uvError(Int32(sent)))
        return
      }
      rest = UnsafeRawBufferPointer(rebasing: data[max(sent, 0)...])
    }
    enqueue(rest, lender: lender)
  }

  /// writelines: the pieces as one write.
  public func write(vector pieces: [UnsafeRawBufferPointer]) throws {
    let total = pieces.reduce(0) { $0 + $1.count }
    guard try takesWrite(of: total) else { return }
    var skip = 0
    if !writing && queued.isEmpty {
      var buffers = pieces.filter { $0.count > 0 }.map {
        uv_buf_init(UnsafeMutableRawPointer(mutating: $0.baseAddress!).assumingMemoryBound(to: CChar.self),
                    UInt32(clamping: $0.count))
      }
      let sent = Int(uv_try_write(stream, &buffers, UInt32(buffers.count)))
      if sent == total { return }
      if sent < 0 && sent != Int(UV_EAGAIN.rawValue) {
        fatalError(uvError(Int32(sent)))
        return
      }
      skip = max(sent, 0)
    }
    for piece in pieces {
      if skip >= piece.count { skip -= piece.count; continue }
      enqueue(UnsafeRawBufferPointer(rebasing: piece[skip...]), flush: false)
      skip = 0
    }
    if !writing { flush() }
    maybePauseProtocol()
  }

  /// asyncio's checks before a write: refused after write_eof; nothing to
  /// do for no bytes; dropped once the connection is lost.
  private func takesWrite(of count: Int) throws -> Bool {
    guard kind != .readPipe else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "a read pipe cannot be written") }
    guard !eofWritten else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "Cannot call write() after write_eof()") }
    guard sendfileFuture == nil else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "unable to write; sendfile is in progress")
    }
    guard count > 0 else { return false }
    if connectionLostCount > 0 || handleClosed {
      connectionLostCount += 1
      return false
    }
    return true
  }

  private func enqueue(_ bytes: UnsafeRawBufferPointer, lender: AnyObject? = nil, flush now: Bool = true) {
    guard bytes.count > 0 else { return }
    if let lender {
      queued.append(Chunk(bytes: bytes, lender: lender))
    } else {
      let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
      copy.copyMemory(from: bytes)
      queued.append(Chunk(bytes: UnsafeRawBufferPointer(copy), lender: nil))
    }
    queuedBytes += bytes.count
    if now {
      if !writing { flush() }
      maybePauseProtocol()
    }
  }

  /// Hands everything queued to libuv in one write.
  private func flush() {
    guard !queued.isEmpty, !handleClosed else { return }
    inflight = queued
    queued = []
    queuedBytes = 0
    var buffers = inflight.map {
      uv_buf_init(UnsafeMutableRawPointer(mutating: $0.bytes.baseAddress!).assumingMemoryBound(to: CChar.self),
                  UInt32($0.bytes.count))
    }
    let request: UnsafeMutablePointer<uv_write_t>
    if let writeRequest {
      request = writeRequest
    } else {
      request = .allocate(capacity: 1)
      request.pointee.data = Unmanaged.passUnretained(self).toOpaque()
      writeRequest = request
    }
    let rc = uv_write(request, stream, &buffers, UInt32(buffers.count), transportWritten)
    if rc != 0 {
      for chunk in inflight { chunk.free() }
      inflight = []
      fatalError(uvError(rc))
      return
    }
    writing = true
  }

  fileprivate func didWrite(_ status: Int32) {
    writing = false
    for chunk in inflight { chunk.free() }
    inflight = []
    if handleClosed || status == UV_ECANCELED.rawValue { return }
    if status < 0 {
      fatalError(uvError(status))
      return
    }
    if !queued.isEmpty {
      flush()
      maybeResumeProtocol()
      return
    }
    maybeResumeProtocol()
    // resume_writing may have written again (a new uv_write is in flight)
    // and then closed: the close waits for that write to finish.
    guard !writing, queued.isEmpty else { return }
    if let start = sendfileStart {
      sendfileStart = nil
      return start()
    }
    if isClosing {
      closeHandle(nil)
    } else if eofWritten {
      shutdown()
    }
  }

  /// asyncio's write_eof: the write side closes once the buffer is sent.
  public func writeEOF() {
    // A pipe has no half-close: its write_eof closes it once flushed.
    if kind == .writePipe { return close() }
    guard kind != .readPipe, !isClosing, !eofWritten else { return }
    eofWritten = true
    if !writing && queued.isEmpty && sendfileFuture == nil { shutdown() }
  }

  // MARK: sendfile

  /// Stops reading and refuses writes until `future` is done; `start` runs
  /// once everything written before is sent.
  package func beginSendfile(_ future: SocketFuture, start: @escaping () -> Void) {
    sendfileFuture = future
    readingAfterSendfile = isReading
    pauseReading()
    if !writing && queued.isEmpty { start() } else { sendfileStart = start }
  }

  package func endSendfile() {
    sendfileFuture = nil
    sendfileStart = nil
    if readingAfterSendfile {
      readingAfterSendfile = false
      resumeReading()
    }
    if eofWritten && !isClosing { shutdown() }
  }

  /// A close ends the sendfile under way, as the socket going away would.
  private func failSendfile() {
    sendfileFuture?.fail(OSError(errno: ENOTCONN, "the transport was closed during sendfile"))
  }

  public var canWriteEOF: Bool { kind != .readPipe }

  private func shutdown() {
    guard !shutdownDone, !handleClosed else { return }
    shutdownDone = true
    let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
    if uv_shutdown(request, stream, transportShutdown) != 0 { request.deallocate() }
  }

  public func setWriteBufferLimits(high: Int? = nil, low: Int? = nil) throws {
    try flow.setLimits(high: high, low: low)
    maybePauseProtocol()
  }

  private func maybePauseProtocol() {
    guard let current = currentProtocol, flow.pauses(at: writeBufferSize) else { return }
    current.pauseWriting()
  }

  private func maybeResumeProtocol() {
    guard let current = currentProtocol, flow.resumes(at: writeBufferSize) else { return }
    current.resumeWriting()
  }

  // MARK: Closing

  /// asyncio's close: stops reading, sends what is buffered, then closes.
  public func close() {
    guard !isClosing else { return }
    if inGetBuffer {
      if deferred != .abort { deferred = .close }
      return
    }
    isClosing = true
    failSendfile()
    stopReading()
    if !writing && queued.isEmpty {
      connectionLostCount += 1
      closeHandle(nil)
    }
  }

  /// asyncio's abort: closes now, dropping the buffer.
  public func abort() {
    if inGetBuffer {
      deferred = .abort
      return
    }
    forceClose(nil)
  }

  /// asyncio's _fatal_error: errors of the socket only end the connection
  /// (OSErrors are not reported, as asyncio logs them at debug level).
  private func fatalError(_ error: any Error) {
    if !(error is OSError) { report("Fatal error on transport", error) }
    forceClose(error)
  }

  private func report(_ message: String, _ error: any Error) {
    loop.callExceptionHandler(ExceptionContext(message: message, error: error))
  }

  /// asyncio's _force_close.
  private func forceClose(_ error: (any Error)?) {
    guard !handleClosed else { return }
    for chunk in queued { chunk.free() }
    queued = []
    queuedBytes = 0
    isClosing = true
    failSendfile()
    connectionLostCount += 1
    stopReading()
    closeHandle(error)
  }

  private func closeHandle(_ error: (any Error)?) {
    guard !handleClosed else { return }
    handleClosed = true
    lostError = error
    stopHangUpWatch()
    loop.ioClosed(self)
    uv_close(handle.assumingMemoryBound(to: uv_handle_t.self), transportClosed)
  }

  fileprivate func didClose() {
    isLost = true
    let lost = currentProtocol
    currentProtocol = nil
    bufferedProtocol = nil
    lendingProtocol = nil
    lost?.connectionLost(lostError)
    lostError = nil
    onLost?(self)
    onLost = nil
    // Last: this may free the transport.
    let keep = keepAlive
    keepAlive = nil
    keep?.release()
  }

  // MARK: Extra info

  /// The socket's descriptor, or nil once it is closed.
  public var fileDescriptor: Int32? {
    guard !handleClosed else { return nil }
    var fd: uv_os_fd_t = -1
    return uv_fileno(handle.assumingMemoryBound(to: uv_handle_t.self), &fd) == 0 ? fd : nil
  }

  /// get_extra_info('sockname').
  public var socketName: SocketAddress? { address(getsockname) }
  /// get_extra_info('peername').
  public var peerName: SocketAddress? { address(getpeername) }

  private func address(_ query: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32)
    -> SocketAddress? {
    guard let fd = fileDescriptor else { return nil }
    return socketAddress(of: fd, query)
  }

  public var description: String {
    "<StreamTransport \(kind) fd=\(fileDescriptor.map(String.init) ?? "closed")\(isClosing ? " closing" : "")>"
  }
}

/// A socket's own or peer address, through getsockname or getpeername.
func socketAddress(of fd: Int32, _ query: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32)
  -> SocketAddress? {
  var storage = sockaddr_storage()
  var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
  let rc = withUnsafeMutableBytes(of: &storage) {
    query(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
  }
  guard rc == 0 else { return nil }
  return withUnsafeBytes(of: &storage) { SocketAddress(bytes: $0.baseAddress!, length: Int(length)) }
}

@inline(__always)
private func transport(_ data: UnsafeMutableRawPointer?) -> StreamTransport {
  Unmanaged<StreamTransport>.fromOpaque(data!).takeUnretainedValue()
}

/// The transport of a callback that cannot free it: it keeps itself alive
/// (keepAlive) until its close callback, so no reference is taken for the
/// call (a retain and a release per read and per write otherwise).
@inline(__always)
private func withOpenTransport(_ data: UnsafeMutableRawPointer?, _ body: (StreamTransport) -> Void) {
  Unmanaged<StreamTransport>.fromOpaque(data!)._withUnsafeGuaranteedRef(body)
}

private func transportAlloc(_ handle: UnsafeMutablePointer<uv_handle_t>?, _ suggested: Int,
                            _ buffer: UnsafeMutablePointer<uv_buf_t>?) {
  withOpenTransport(handle!.pointee.data) { buffer!.pointee = $0.allocate(suggested) }
}

private func transportRead(_ stream: UnsafeMutablePointer<uv_stream_t>?, _ count: Int,
                           _ buffer: UnsafePointer<uv_buf_t>?) {
  withOpenTransport(stream!.pointee.data) { $0.didRead(count, UnsafeMutableRawPointer(buffer?.pointee.base)) }
}

private func transportWritten(_ request: UnsafeMutablePointer<uv_write_t>?, _ status: Int32) {
  withOpenTransport(request!.pointee.data) { $0.didWrite(status) }
}

private func transportShutdown(_ request: UnsafeMutablePointer<uv_shutdown_t>?, _ status: Int32) {
  request?.deallocate()
}

/// A poll handle watching `fd`, which it owns, for reading, with `owner` in
/// its data; nil, and `fd` closed, if libuv refuses. closePoll closes both.
func startPoll(_ loop: Loop, owning fd: Int32, for owner: AnyObject, _ callback: uv_poll_cb) -> UnsafeMutablePointer<uv_poll_t>? {
  let poll = UnsafeMutablePointer<uv_poll_t>.allocate(capacity: 1)
  guard uv_poll_init(loop.uv, poll, fd) == 0 else {
    poll.deallocate()
    Glibc.close(fd)
    return nil
  }
  poll.pointee.data = Unmanaged.passUnretained(owner).toOpaque()
  guard uv_poll_start(poll, Int32(UV_READABLE.rawValue), callback) == 0 else {
    closePoll(poll, thenClosing: fd)
    return nil
  }
  return poll
}

/// Closes a poll handle, then the descriptor it polled once libuv let go
/// of it (libuv's uv_fileno no longer answers for a closing handle, so the
/// descriptor rides in `data`), then frees the handle.
func closePoll(_ poll: UnsafeMutablePointer<uv_poll_t>, thenClosing fd: Int32) {
  poll.pointee.data = UnsafeMutableRawPointer(bitPattern: Int(fd) + 1)
  uv_close(UnsafeMutableRawPointer(poll).assumingMemoryBound(to: uv_handle_t.self)) { handle in
    guard let handle else { return }
    Glibc.close(Int32(Int(bitPattern: handle.pointee.data) - 1))
    handle.deallocate()
  }
}

private func transportHungUp(_ poll: UnsafeMutablePointer<uv_poll_t>?, _ status: Int32, _ events: Int32) {
  guard let data = poll?.pointee.data else { return }
  transport(data).readerWentAway()
}

private func transportClosed(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
  transport(handle!.pointee.data).didClose()
}
