// Socket operations: asyncio's sock_recv, sock_recv_into, sock_recvfrom,
// sock_recvfrom_into, sock_sendall, sock_sendto, sock_connect, sock_accept
// and sock_sendfile on a non-blocking socket the caller owns, and
// loop.sendfile on a stream transport.
//
// Each operation makes its system call at once. One that would block waits
// in its descriptor's queue for reading or for writing (on the descriptor's
// watcher, Watchers.swift) and calls again, in order, each time the
// descriptor is ready: several operations on one socket are served first
// come, first served (in asyncio a second sock_recv replaces the first's
// reader and the first never ends). An operation whose future is done
// (cancelled) leaves its queue at once and never calls again, so what it
// would have read stays in the socket.
internal import CAioSwift
internal import CLibUV
import Glibc

/// The future of a socket operation, which only the operation finishes.
/// A cancelled send says how many bytes went out (CancelledError.bytesSent).
package final class SocketFuture: RawFuture {
  override var outcomeIsSetFromOutside: Bool { false }
  /// For an operation that sends: the bytes sent so far.
  package var bytesSent = 0
  fileprivate var countsBytesSent = false
  /// The descriptor whose queue holds this operation.
  fileprivate var queuedOn: Int32?
  /// Runs once the future is done, however it ends (frees a copy, puts a
  /// file's offset right, lets a transport write again).
  fileprivate var whenDone: (() -> Void)?

  /// Finishes with a C value (freed by `destructor` unless taken).
  package func complete(_ value: UnsafeMutableRawPointer? = nil, destructor: CDestructor? = nil) {
    guard state == .pending else {
      destructor?(value)
      return
    }
    cValue = value
    cDestructor = destructor
    finish(.finished)
  }

  package func fail(_ error: any Error) {
    guard state == .pending else { return }
    self.error = error
    finish(.finished)
  }

  override func didFinish() {
    if state == .cancelled && countsBytesSent {
      var cancelled = makeCancelledError()
      cancelled.bytesSent = bytesSent
      error = cancelled
    }
    if let fd = queuedOn {
      queuedOn = nil
      loop.withdraw(self, from: fd)
    }
    let done = whenDone
    whenDone = nil
    done?()
  }
}

/// An operation waiting in its descriptor's queue.
final class SocketWait {
  let future: SocketFuture
  /// Makes the call again: true once it finished `future`.
  let attempt: () -> Bool

  init(_ future: SocketFuture, _ attempt: @escaping () -> Bool) {
    self.future = future
    self.attempt = attempt
  }

  func fail(_ error: any Error) { future.fail(error) }
}

/// asyncio's loop.sendfile and sock_sendfile `fallback`: whether a file the
/// kernel's sendfile cannot send is read and written instead.
public enum SendfileFallback: Int32, Sendable {
  /// Never: such a file fails with AIOS_ENOSENDFILE (SendfileNotAvailableError).
  case refused = 0
  /// asyncio's fallback=True.
  case allowed = 1
  /// Always read and write, never the kernel's sendfile.
  case always = 2
}

// MARK: System calls

/// Whether the call that just failed is to be made again once the
/// descriptor is ready (asyncio's BlockingIOError and InterruptedError).
private var callWouldBlock: Bool { errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }

/// recv(2), or recvfrom(2) when the sender is asked for: the count and the
/// sender, or nil when it would block.
package func receiveCall(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer,
                         sender: Bool) throws -> (count: Int, address: SocketAddress?)? {
  var storage = sockaddr_storage()
  var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
  let count = sender
    ? withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, &length) }
    }
    : recv(fd, buffer.baseAddress, buffer.count, 0)
  guard count >= 0 else {
    if callWouldBlock { return nil }
    throw OSError(errno: errno)
  }
  let address = sender && length > 0 ? SocketAddress(bytes: &storage, length: Int(length)) : nil
  return (count, address)
}

/// send(2) without SIGPIPE (write(2) on a descriptor that is not a socket),
/// or sendto(2): the count, or nil when it would block.
package func sendCall(_ fd: Int32, _ data: UnsafeRawBufferPointer, to address: SocketAddress? = nil) throws -> Int? {
  var count = address.map { address in
    address.withBytes {
      sendto(fd, data.baseAddress, data.count, Int32(MSG_NOSIGNAL),
             $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
    }
  } ?? send(fd, data.baseAddress, data.count, Int32(MSG_NOSIGNAL))
  if count < 0 && errno == ENOTSOCK && address == nil { count = write(fd, data.baseAddress, data.count) }
  guard count >= 0 else {
    if callWouldBlock { return nil }
    throw OSError(errno: errno)
  }
  return count
}

/// How much to allocate for a read of up to `count` bytes: all of it up to
/// 256 KiB; past that what the socket holds (FIONREAD), at least 256 KiB.
package func receiveCapacity(_ fd: Int32, _ count: Int) -> Int {
  let small = 256 * 1024
  guard count > small else { return count }
  return min(count, max(Int(aiosi_bytes_readable(fd)), small))
}

// MARK: Queues

extension Loop {
  /// asyncio's checks of a socket handed to a sock_* method: open,
  /// non-blocking (a blocking call would stall the loop), and no transport's.
  package func checkSocketArgument(_ fd: Int32) throws {
    try checkUsable()
    let flags = fcntl(fd, F_GETFL)
    guard fd >= 0, flags >= 0 else { throw OSError(errno: EBADF) }
    guard flags & O_NONBLOCK != 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "the socket must be non-blocking") }
    try checkNoTransport(fd)
  }

  /// Starts an operation on `fd`. `call` makes the system call once: it
  /// finishes `future` and returns true, returns false when the call would
  /// block, or throws the call's error (which fails `future`). It is made at
  /// once unless other operations wait on `fd` the same way, and then each
  /// time `fd` is ready, until it finishes.
  package func startSocketOperation(_ fd: Int32, reading: Bool, _ future: SocketFuture,
                                    _ call: @escaping () throws -> Bool) throws {
    let attempt: () -> Bool = {
      do {
        return try call()
      } catch {
        future.fail(error)
        return true
      }
    }
    let others = descriptorWatchers[fd].map { reading ? !$0.readWaits.isEmpty : !$0.writeWaits.isEmpty } ?? false
    if !others && attempt() { return }
    let watcher = try watcher(for: fd)
    let wait = SocketWait(future, attempt)
    if reading { watcher.readWaits.append(wait) } else { watcher.writeWaits.append(wait) }
    future.queuedOn = fd
    watcher.update()
  }

  /// Takes a finished operation out of its queue; a watcher nobody needs
  /// any more goes (and the duplicate it polls is closed).
  fileprivate func withdraw(_ future: SocketFuture, from fd: Int32) {
    guard let watcher = descriptorWatchers[fd] else { return }
    watcher.readWaits.removeAll { $0.future === future }
    watcher.writeWaits.removeAll { $0.future === future }
    if !watcher.update() { dropWatcher(watcher) }
  }

  /// Starts a send from `data`: the first call reads the caller's memory;
  /// an operation still waiting after it reads a copy.
  private func startSending(_ fd: Int32, _ data: UnsafeRawBufferPointer, _ future: SocketFuture,
                            _ call: @escaping (UnsafeRawBufferPointer) throws -> Bool) throws {
    var source = data
    try startSocketOperation(fd, reading: false, future) { try call(source) }
    guard !future.isDone, data.count > 0 else { return }
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 1)
    copy.copyMemory(from: data)
    source = UnsafeRawBufferPointer(copy)
    future.whenDone = { copy.deallocate() }
  }
}

// MARK: Operations

extension Loop {
  /// sock_recv_into and sock_recvfrom_into: `buffer` must stay valid until
  /// the future is done (once cancelled, it is never written).
  package func startReceive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, sender: Bool,
                            deliver: @escaping (SocketFuture, Int, SocketAddress?) -> Void) throws -> SocketFuture {
    try checkSocketArgument(fd)
    let future = SocketFuture(loop: self)
    try startSocketOperation(fd, reading: true, future) {
      guard let (count, address) = try receiveCall(fd, into: buffer, sender: sender) else { return false }
      deliver(future, count, address)
      return true
    }
    return future
  }

  /// sock_sendall: all of `data` (copied if the socket does not take it at
  /// once), or the error. The C result is the count.
  package func startSendAll(_ fd: Int32, _ data: UnsafeRawBufferPointer) throws -> SocketFuture {
    try checkSocketArgument(fd)
    let future = SocketFuture(loop: self)
    future.countsBytesSent = true
    try startSending(fd, data, future) { source in
      while future.bytesSent < source.count {
        guard let sent = try sendCall(fd, UnsafeRawBufferPointer(rebasing: source[future.bytesSent...])) else {
          return false
        }
        future.bytesSent += sent
      }
      future.complete(UnsafeMutableRawPointer(bitPattern: source.count))
      return true
    }
    return future
  }

  /// sock_sendto: one datagram; the C result is the count sent.
  package func startSendTo(_ fd: Int32, _ data: UnsafeRawBufferPointer, to address: SocketAddress) throws -> SocketFuture {
    try checkSocketArgument(fd)
    let future = SocketFuture(loop: self)
    try startSending(fd, data, future) { source in
      guard let sent = try sendCall(fd, source, to: address) else { return false }
      future.complete(UnsafeMutableRawPointer(bitPattern: sent))
      return true
    }
    return future
  }

  /// sock_connect to an address already resolved.
  package func startConnect(_ fd: Int32, to address: SocketAddress) throws -> SocketFuture {
    try checkSocketArgument(fd)
    let future = SocketFuture(loop: self)
    // EINPROGRESS: the connection is under way, and SO_ERROR tells how it
    // ended once the socket is writable. EAGAIN (a Unix listener's backlog
    // is full): nothing is under way, and connect is called again.
    // ECONNABORTED at once: an earlier attempt on this socket failed and its
    // error was taken; the kernel has reset the socket, and connect starts
    // over (as the next call after the error would).
    var underWay = false
    var startedOver = false
    try startSocketOperation(fd, reading: false, future) {
      if underWay {
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0 else { throw OSError(errno: errno) }
        if failure == EINPROGRESS || failure == EALREADY { return false }
        if failure != 0 { throw OSError(errno: failure, "Connect call failed \(address)") }
        future.complete()
        return true
      }
      while true {
        let rc = address.withBytes {
          connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
        }
        if rc == 0 {
          future.complete()
          return true
        }
        switch errno {
        case EINPROGRESS, EINTR:
          underWay = true
          return false
        case EAGAIN: return false
        case ECONNABORTED where !startedOver: startedOver = true
        default: throw OSError(errno: errno)
        }
      }
    }
    return future
  }

  /// sock_accept: the new connection, non-blocking and close-on-exec.
  package func startAccept(_ fd: Int32, deliver: @escaping (SocketFuture, Int32, SocketAddress?) -> Void) throws
    -> SocketFuture
  {
    try checkSocketArgument(fd)
    let future = SocketFuture(loop: self)
    try startSocketOperation(fd, reading: true, future) {
      var storage = sockaddr_storage()
      var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
      let accepted = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          aiosi_accept(fd, $0, &length)
        }
      }
      guard accepted >= 0 else {
        if callWouldBlock { return false }
        throw OSError(errno: errno)
      }
      deliver(future, accepted, length > 0 ? SocketAddress(bytes: &storage, length: Int(length)) : nil)
      return true
    }
    return future
  }
}

// MARK: sendfile

/// A file on its way to a socket: the kernel's sendfile(2) from a regular
/// file, or reads of the file written to the socket (asyncio's fallback).
/// Either way the file is read from `offset` on, and its own offset is left
/// after the last byte sent, as asyncio leaves it. The fallback reads the
/// file on the loop's thread, as the kernel's sendfile does within its call.
private final class FileSender {
  let fd: Int32
  let file: Int32
  let offset: Int
  let count: Int?
  let fallbackAllowed: Bool
  private var useKernel: Bool
  private var buffer: UnsafeMutableRawBufferPointer?
  /// The part of `buffer` read and not yet sent.
  private var pending = 0..<0

  /// The size of the fallback's reads (asyncio's SENDFILE_FALLBACK_READBUFFER_SIZE).
  static let blockSize = 256 * 1024

  init(fd: Int32, file: Int32, offset: Int, count: Int?, fallback: SendfileFallback) throws {
    guard offset >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "offset must be a non-negative integer (got \(offset))") }
    if let count, count <= 0 {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "count must be a positive integer (got \(count))")
    }
    var info = stat()
    guard fstat(file, &info) == 0 else { throw OSError(errno: errno) }
    let regular = info.st_mode & S_IFMT == S_IFREG
    guard regular || fallback != .refused else {
      throw RuntimeError(code: AIOS_ENOSENDFILE.rawValue, "not a regular file")
    }
    self.fd = fd
    self.file = file
    self.offset = offset
    self.count = count
    fallbackAllowed = fallback != .refused
    useKernel = regular && fallback != .always
  }

  deinit { buffer?.deallocate() }

  /// Sends until the socket would block (false) or the file is sent (true).
  func step(_ future: SocketFuture) throws -> Bool {
    while true {
      let remaining = count.map { $0 - future.bytesSent } ?? Int.max
      if useKernel {
        guard remaining > 0 else { return done(future) }
        var position = off_t(offset + future.bytesSent)
        let sent = Glibc.sendfile(fd, file, &position, min(remaining, 1 << 30))
        if sent > 0 {
          future.bytesSent += sent
          continue
        }
        if sent == 0 { return done(future) }
        if callWouldBlock { return false }
        let failure = errno
        if future.bytesSent > 0 {
          // The connection went away in the middle (asyncio's ConnectionError).
          throw OSError(errno: failure == ENOTCONN ? ENOTCONN : failure)
        }
        // A first call that fails: the kernel cannot send this file here.
        guard fallbackAllowed else { throw RuntimeError(code: AIOS_ENOSENDFILE.rawValue, "os.sendfile call failed") }
        useKernel = false
        continue
      }
      if !pending.isEmpty {
        let piece = UnsafeRawBufferPointer(rebasing: buffer![pending])
        guard let sent = try sendCall(fd, piece) else { return false }
        pending = pending.lowerBound + sent..<pending.upperBound
        future.bytesSent += sent
        continue
      }
      guard remaining > 0 else { return done(future) }
      let block = buffer ?? .allocate(byteCount: min(count ?? FileSender.blockSize, FileSender.blockSize), alignment: ioAlignment)
      buffer = block
      let read = pread(file, block.baseAddress, min(block.count, remaining), off_t(offset + future.bytesSent))
      if read < 0 {
        if errno == EINTR { continue }
        throw OSError(errno: errno)
      }
      if read == 0 { return done(future) }
      pending = 0..<read
    }
  }

  private func done(_ future: SocketFuture) -> Bool {
    future.complete(UnsafeMutableRawPointer(bitPattern: future.bytesSent))
    return true
  }

  /// Leaves the file's offset after the last byte sent.
  func finish(sent: Int) {
    if sent > 0 { lseek(file, off_t(offset + sent), SEEK_SET) }
  }
}

extension Loop {
  /// sock_sendfile: the C result is the count sent.
  package func startSockSendfile(_ fd: Int32, file: Int32, offset: Int, count: Int?,
                                 fallback: SendfileFallback) throws -> SocketFuture {
    try checkSocketArgument(fd)
    var type: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    // A descriptor that is no socket (a pipe) is not a SOCK_STREAM socket either.
    let isSocket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0
    guard isSocket || errno == ENOTSOCK else { throw OSError(errno: errno) }
    guard isSocket && type == Int32(SOCK_STREAM.rawValue) else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "only SOCK_STREAM type sockets are supported")
    }
    let sender = try FileSender(fd: fd, file: file, offset: offset, count: count, fallback: fallback)
    let future = SocketFuture(loop: self)
    future.countsBytesSent = true
    future.whenDone = { [unowned future] in sender.finish(sent: future.bytesSent) }
    try startSocketOperation(fd, reading: false, future) { try sender.step(future) }
    return future
  }

  /// loop.sendfile(transport, ...): once the transport's write buffer is
  /// empty, the file goes straight to its socket (or pipe). Until it is
  /// sent the transport does not read (as asyncio pauses it) and refuses
  /// writes; closing the transport fails the sendfile with ENOTCONN.
  package func startSendfile(_ transport: StreamTransport, file: Int32, offset: Int, count: Int?,
                             fallback: SendfileFallback) throws -> SocketFuture {
    try checkUsable()
    guard transport.loop === self else { throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue) }
    guard !transport.isClosing, let fd = transport.fileDescriptor else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "Transport is closing")
    }
    guard transport.kind != .readPipe else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "sendfile is not supported for transport \(transport)")
    }
    guard transport.sendfileFuture == nil else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "sendfile is already in progress")
    }
    let sender = try FileSender(fd: fd, file: file, offset: offset, count: count, fallback: fallback)
    let future = SocketFuture(loop: self)
    future.countsBytesSent = true
    future.whenDone = { [unowned future] in
      sender.finish(sent: future.bytesSent)
      transport.endSendfile()
    }
    transport.beginSendfile(future) { [unowned self] in
      do {
        try self.startSocketOperation(fd, reading: false, future) { try sender.step(future) }
      } catch {
        future.fail(error)
      }
    }
    return future
  }
}

// MARK: Swift

/// Awaits an operation that sends: a cancellation, however it reaches the
/// awaiting task, says how many bytes went out.
private func awaitSending(_ future: SocketFuture) async throws {
  do {
    try await future.wait()
  } catch var cancelled as CancelledError {
    if cancelled.bytesSent == nil { cancelled.bytesSent = future.bytesSent }
    throw cancelled
  }
}

extension Loop {
  /// asyncio's sock_recv: up to `count` bytes (none at EOF).
  public func sockRecv(_ fd: Int32, _ count: Int) async throws -> [UInt8] {
    try await receiveBytes(fd, count, sender: false).data
  }

  /// asyncio's sock_recvfrom: a datagram of up to `count` bytes and its sender.
  public func sockRecvFrom(_ fd: Int32, _ count: Int) async throws -> (data: [UInt8], address: SocketAddress?) {
    try await receiveBytes(fd, count, sender: true)
  }

  private func receiveBytes(_ fd: Int32, _ count: Int, sender: Bool) async throws
    -> (data: [UInt8], address: SocketAddress?)
  {
    guard count >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "negative count") }
    try checkSocketArgument(fd)
    let capacity = receiveCapacity(fd, count)
    var received: (data: [UInt8], address: SocketAddress?) = ([], nil)
    let future = SocketFuture(loop: self)
    try startSocketOperation(fd, reading: true, future) {
      var blocked = false
      var address: SocketAddress?
      let data = try [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
        initialized = 0
        guard let (count, from) = try receiveCall(fd, into: UnsafeMutableRawBufferPointer(buffer), sender: sender) else {
          blocked = true
          return
        }
        initialized = count
        address = from
      }
      if blocked { return false }
      received = (data, address)
      future.complete()
      return true
    }
    try await future.wait()
    return received
  }

  /// asyncio's sock_recv_into: `buffer` must stay valid until this returns.
  public func sockRecv(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
    try await sockRecvFrom(fd, into: buffer).count
  }

  /// asyncio's sock_recvfrom_into.
  public func sockRecvFrom(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) async throws
    -> (count: Int, address: SocketAddress?)
  {
    var received: (count: Int, address: SocketAddress?) = (0, nil)
    let future = try startReceive(fd, into: buffer, sender: true) { future, count, address in
      received = (count, address)
      future.complete()
    }
    try await future.wait()
    return received
  }

  /// asyncio's sock_sendall: all of `data`, or the error. Cancelled, it
  /// throws a CancelledError whose bytesSent says how much was sent.
  public func sockSendAll(_ fd: Int32, _ data: UnsafeRawBufferPointer) async throws {
    try await awaitSending(try startSendAll(fd, data))
  }

  /// sock_sendall of an array.
  public func sockSendAll(_ fd: Int32, _ data: [UInt8]) async throws {
    // What the socket does not take at once is copied before this returns.
    try await awaitSending(try data.withUnsafeBytes { try startSendAll(fd, $0) })
  }

  /// asyncio's sock_sendto: the count sent.
  public func sockSendTo(_ fd: Int32, _ data: UnsafeRawBufferPointer, to address: SocketAddress) async throws -> Int {
    let future = try startSendTo(fd, data, to: address)
    try await future.wait()
    return Int(bitPattern: future.cValue)
  }

  /// sock_sendto of an array.
  public func sockSendTo(_ fd: Int32, _ data: [UInt8], to address: SocketAddress) async throws -> Int {
    let future = try data.withUnsafeBytes { try startSendTo(fd, $0, to: address) }
    try await future.wait()
    return Int(bitPattern: future.cValue)
  }

  /// asyncio's sock_connect, to an address already resolved.
  public func sockConnect(_ fd: Int32, to address: SocketAddress) async throws {
    try await startConnect(fd, to: address).wait()
  }

  /// asyncio's sock_accept: the new connection (non-blocking, which the
  /// caller owns) and its peer's address.
  public func sockAccept(_ fd: Int32) async throws -> (fd: Int32, address: SocketAddress?) {
    var accepted: (fd: Int32, address: SocketAddress?) = (-1, nil)
    let future = try startAccept(fd) { future, connection, address in
      accepted = (connection, address)
      future.complete()
    }
    do {
      try await future.wait()
    } catch {
      // Accepted, then the task was cancelled before it resumed.
      if accepted.fd >= 0 { Glibc.close(accepted.fd) }
      throw error
    }
    return accepted
  }

  /// asyncio's sock_sendfile: `count` bytes of `file` (nil: to its end)
  /// from `offset`; the count sent.
  public func sockSendfile(_ fd: Int32, file: Int32, offset: Int = 0, count: Int? = nil,
                           fallback: SendfileFallback = .allowed) async throws -> Int {
    let future = try startSockSendfile(fd, file: file, offset: offset, count: count, fallback: fallback)
    try await awaitSending(future)
    return future.bytesSent
  }

  /// asyncio's loop.sendfile(transport, file, offset, count, fallback).
  public func sendfile(_ transport: StreamTransport, file: Int32, offset: Int = 0, count: Int? = nil,
                       fallback: SendfileFallback = .allowed) async throws -> Int {
    let future = try startSendfile(transport, file: file, offset: offset, count: count, fallback: fallback)
    try await awaitSending(future)
    return future.bytesSent
  }
}
