// Descriptor watchers: asyncio's add_reader, remove_reader, add_writer and
// remove_writer, on a libuv poll handle.
//
// The handle polls a duplicate of the caller's descriptor, never the
// descriptor itself: the caller may close it while it is watched (asyncio
// survives that), and libuv aborts when epoll refuses a descriptor it was
// told to watch. Each event checks that the caller's descriptor still names
// the same file, and drops the watcher once it does not.
internal import CAioSwift
internal import CLibUV
import Glibc

final class DescriptorWatcher {
  unowned let loop: Loop
  let fd: Int32
  /// The duplicate libuv polls.
  private let copy: Int32
  private let device: UInt64
  private let inode: UInt64
  private let poll: UnsafeMutablePointer<uv_poll_t>
  var reader: Handle?
  var writer: Handle?
  /// Socket operations waiting to read and to write, in order (Sockets.swift).
  var readWaits: [SocketWait] = []
  var writeWaits: [SocketWait] = []
  private var events: Int32 = 0
  private(set) var isClosed = false

  init(loop: Loop, fd: Int32) throws {
    var info = stat()
    guard fd >= 0, fstat(fd, &info) == 0 else { throw OSError(errno: fd < 0 ? EBADF : errno) }
    self.loop = loop
    self.fd = fd
    device = UInt64(info.st_dev)
    inode = UInt64(info.st_ino)
    copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
    guard copy >= 0 else { throw OSError(errno: errno) }
    poll = .allocate(capacity: 1)
    let rc = uv_poll_init(loop.uv, poll, copy)
    guard rc == 0 else {
      Glibc.close(copy)
      poll.deallocate()
      throw uvError(rc)
    }
    poll.pointee.data = Unmanaged.passUnretained(self).toOpaque()
  }

  static let closedUnder = OSError(errno: EBADF, "the descriptor was closed while an operation waited on it")

  /// Whether the caller's descriptor still names the file being watched.
  var isCurrent: Bool {
    var info = stat()
    return fstat(fd, &info) == 0 && UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
  }

  /// Polls for what the callbacks want; false once nothing is wanted.
  @discardableResult
  func update() -> Bool {
    guard !isClosed else { return false }
    let wanted = (reader != nil || !readWaits.isEmpty ? Int32(UV_READABLE.rawValue) : 0)
      | (writer != nil || !writeWaits.isEmpty ? Int32(UV_WRITABLE.rawValue) : 0)
    if wanted != events {
      events = wanted
      if wanted == 0 { uv_poll_stop(poll) } else { uv_poll_start(poll, wanted, descriptorReady) }
    }
    return wanted != 0
  }

  fileprivate func ready(status: Int32, events ready: Int32) {
    guard isCurrent else {
      // Closed under the watcher (or its number reused): it goes.
      loop.dropWatcher(self, failing: DescriptorWatcher.closedUnder)
      return
    }
    // An error (POLLERR, a hang-up) wakes both sides, as selectors report it.
    let readable = status < 0 || ready & Int32(UV_READABLE.rawValue) != 0
    let writable = status < 0 || ready & Int32(UV_WRITABLE.rawValue) != 0
    if status < 0 {
      // libuv stopped the handle: it starts again if still wanted.
      events = 0
      update()
    }
    if readable, let reader { loop.schedule(.handle(reader)) }
    if writable, let writer { loop.schedule(.handle(writer)) }
    if readable { serve(reading: true) }
    if writable { serve(reading: false) }
    // The last operation may have finished, and its watcher gone with it.
    if !isClosed && !update() { loop.dropWatcher(self) }
  }

  /// Tries the waiting operations in order until one would block. Each
  /// that finishes leaves its queue as its future finishes (a queue holds
  /// only operations still pending).
  private func serve(reading: Bool) {
    while !isClosed, let wait = reading ? readWaits.first : writeWaits.first {
      guard wait.attempt() else { return }
      if reading, readWaits.first === wait { readWaits.removeFirst() }
      if !reading, writeWaits.first === wait { writeWaits.removeFirst() }
    }
  }

  /// Stops watching, failing the operations still waiting with `error`;
  /// the duplicate closes once libuv let go of the handle.
  func close(failing error: any Error) {
    guard !isClosed else { return }
    isClosed = true
    reader = nil
    writer = nil
    let waits = readWaits + writeWaits
    readWaits = []
    writeWaits = []
    for wait in waits { wait.fail(error) }
    closePoll(poll, thenClosing: copy)
  }
}

private func descriptorReady(_ poll: UnsafeMutablePointer<uv_poll_t>?, _ status: Int32, _ events: Int32) {
  guard let data = poll?.pointee.data else { return }
  Unmanaged<DescriptorWatcher>.fromOpaque(data).takeUnretainedValue().ready(status: status, events: events)
}

/// A transport, as add_reader sees it: its descriptor is not to be watched
/// while it is open.
protocol DescriptorUser: AnyObject, CustomStringConvertible {
  var isClosing: Bool { get }
  var usedDescriptor: Int32? { get }
}
extension StreamTransport: DescriptorUser {
  var usedDescriptor: Int32? { fileDescriptor }
}
extension DatagramTransport: DescriptorUser {
  var usedDescriptor: Int32? { fileDescriptor >= 0 ? fileDescriptor : nil }
}

extension Loop {
  /// asyncio's _ensure_fd_no_transport.
  func checkNoTransport(_ fd: Int32) throws {
    // Looked up among the loop's open I/O: add_reader is rare, and a table
    // kept up to date would cost every connection.
    for case let transport as any DescriptorUser in openIOOwners
    where !transport.isClosing && transport.usedDescriptor == fd {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "File descriptor \(fd) is used by transport \(transport)")
    }
  }

  /// The watcher of `fd`, made if there is none (or the one there watches a
  /// file the descriptor no longer names).
  func watcher(for fd: Int32) throws -> DescriptorWatcher {
    if let existing = descriptorWatchers[fd] {
      if existing.isCurrent { return existing }
      dropWatcher(existing, failing: DescriptorWatcher.closedUnder)
    }
    let made = try DescriptorWatcher(loop: self, fd: fd)
    descriptorWatchers[fd] = made
    // Every watcher goes when the loop closes.
    ioOpened(made) { [unowned self] in self.dropWatcher($0 as! DescriptorWatcher) }
    return made
  }

  func dropWatcher(_ watcher: DescriptorWatcher,
                   failing error: any Error = RuntimeError(code: AIOS_ECLOSED.rawValue)) {
    guard !watcher.isClosed else { return }
    if descriptorWatchers[watcher.fd] === watcher { descriptorWatchers[watcher.fd] = nil }
    ioClosed(watcher)
    watcher.close(failing: error)
  }

  private func addWatch(_ fd: Int32, reading: Bool, _ callback: @escaping () throws -> Void) throws {
    try checkUsable()
    try checkNoTransport(fd)
    let watcher = try watcher(for: fd)
    let handle = Handle(loop: self, callback: .swift(callback))
    handle.repeats = true
    // Adding again replaces the callback (and cancels the one before).
    if reading {
      watcher.reader?.cancel()
      watcher.reader = handle
    } else {
      watcher.writer?.cancel()
      watcher.writer = handle
    }
    watcher.update()
  }

  private func removeWatch(_ fd: Int32, reading: Bool) throws -> Bool {
    try checkUsable()
    guard let watcher = descriptorWatchers[fd] else { return false }
    let handle = reading ? watcher.reader : watcher.writer
    guard let handle else { return false }
    handle.cancel()
    if reading { watcher.reader = nil } else { watcher.writer = nil }
    if !watcher.update() { dropWatcher(watcher) }
    return true
  }

  /// asyncio's add_reader: `callback` runs on the loop each iteration `fd`
  /// is readable. Adding again replaces it. A descriptor a transport of
  /// this loop uses is refused.
  public func addReader(_ fd: Int32, _ callback: @escaping () throws -> Void) throws {
    try addWatch(fd, reading: true, callback)
  }

  /// asyncio's remove_reader: whether a reader was registered.
  @discardableResult
  public func removeReader(_ fd: Int32) throws -> Bool { try removeWatch(fd, reading: true) }

  /// asyncio's add_writer.
  public func addWriter(_ fd: Int32, _ callback: @escaping () throws -> Void) throws {
    try addWatch(fd, reading: false, callback)
  }

  /// asyncio's remove_writer.
  @discardableResult
  public func removeWriter(_ fd: Int32) throws -> Bool { try removeWatch(fd, reading: false) }
}
