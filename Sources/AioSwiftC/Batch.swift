// Batched delivery of I/O events, for bindings where each call from C is
// costly (Python through cffi): a protocol with `batched` set records its
// events in its loop's batch instead of calling back, and receives bytes
// straight into the batch's arena. aios_loop_take_io_events hands a whole
// iteration's events over in one call. Both ways of receiving are the same
// StreamProtocol to the transport.
import AioSwift
import CAioSwift
import Glibc

/// Growable memory for one iteration: events and the bytes they point into.
private struct Buffers {
  var events = UnsafeMutablePointer<aios_io_event_t>.allocate(capacity: 64)
  var eventCapacity = 64
  var count = 0
  var arena = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: ioAlignment)
  var arenaCapacity = 1 << 16
  var used = 0

  mutating func append(_ event: aios_io_event_t) {
    if count == eventCapacity {
      let grown = UnsafeMutablePointer<aios_io_event_t>.allocate(capacity: eventCapacity * 2)
      grown.moveInitialize(from: events, count: count)
      events.deallocate()
      events = grown
      eventCapacity *= 2
    }
    (events + count).initialize(to: event)
    count += 1
  }

  /// Room for `bytes` more after what the arena holds, from the next
  /// cache line on (see ioAlignment), and its offset (earlier offsets keep
  /// their bytes: the arena moves as a whole).
  mutating func reserve(_ bytes: Int) -> (UnsafeMutableRawBufferPointer, offset: Int) {
    let offset = (used + ioAlignment - 1) & ~(ioAlignment - 1)
    if arenaCapacity - offset < bytes {
      let capacity = max(arenaCapacity * 2, offset + bytes)
      let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: ioAlignment)
      grown.copyMemory(from: arena, byteCount: used)
      arena.deallocate()
      arena = grown
      arenaCapacity = capacity
    }
    return (UnsafeMutableRawBufferPointer(start: arena + offset, count: bytes), offset)
  }

  func free() {
    events.deallocate()
    arena.deallocate()
  }
}

/// A loop's batch: the buffers being filled, and the ones last handed over.
final class IOBatch {
  /// The loop owns its batch (bindingState). Events are recorded only from
  /// a transport's callbacks, while the transport holds the loop: no checked
  /// reference (a retain and a release per use) is needed.
  private unowned(unsafe) let loop: Loop
  private var filling = Buffers()
  private var handed = Buffers()
  /// C references to the transports of the handed events.
  private var lent: [UInt64] = []
  private var lentNow: [UInt64] = []
  /// Transports that read this iteration and wait for the take, in the
  /// order they read: a list through the transports themselves, which
  /// costs no allocation per iteration (an array emptied and refilled
  /// costs about as much as the rest of a take).
  private var firstSuspended: StreamTransport?
  private unowned(unsafe) var lastSuspended: StreamTransport?
  /// aios_loop_set_io_events_callback's: scheduled once per take, when the
  /// first event after it is recorded, so a binding whose loop waits for
  /// I/O learns that events wait for it.
  private var notify: (CCallback, UnsafeMutableRawPointer?)?
  private var notified = false
  /// The handed buffers are still the binding's (until a release).
  private var handedInUse = false
  /// aios_loop_set_io_buffer_callback's: the binding's memory for large reads.
  private var bufferSource: (aios_io_buffer_fn, UnsafeMutableRawPointer?)?

  init(loop: Loop) { self.loop = loop }

  deinit {
    for handle in lent + lentNow { _ = ObjectTable.release(handle) }
    // Unlinked one by one: a long list let go of at once would recurse.
    var next = firstSuspended.take()
    while let transport = next { next = transport.nextSuspended.take() }
    filling.free()
    handed.free()
  }

  static func of(_ loop: Loop) -> IOBatch {
    if let batch = loop.bindingState as? IOBatch { return batch }
    let batch = IOBatch(loop: loop)
    loop.bindingState = batch
    return batch
  }

  /// An event of the transport `handle` names (the protocol's C reference).
  func record(_ kind: aios_io_event_kind_t, _ handle: UInt64, token: UInt64, status: Int32 = 0,
              offset: Int = 0, length: Int = 0) {
    filling.append(aios_io_event_t(kind: Int32(kind.rawValue), status: status, token: token,
                                   transport: pointer(handle), offset: offset, length: length))
    scheduleNotify()
  }

  func setNotify(_ callback: aios_callback_fn?, _ arg: UnsafeMutableRawPointer?) {
    notify = callback.map { ($0, arg) }
    notified = false
    if filling.count > 0 { scheduleNotify() }
  }

  /// On the loop's thread: from a transport's callback or the setter.
  private func scheduleNotify() {
    guard !notified, let (callback, arg) = notify, !loop.isClosed else { return }
    loop.scheduleUncancellable(c: callback, arg: arg)
    notified = true
  }

  /// A C reference that events already recorded lend: it goes once they
  /// have been handed over and the next take came.
  func release(afterHandingOver handle: UInt64) {
    if handle != 0 { lentNow.append(handle) }
  }

  func reserve(_ bytes: Int) -> (UnsafeMutableRawBufferPointer, offset: Int) {
    filling.reserve(bytes)
  }

  func setBufferSource(_ get: aios_io_buffer_fn?, _ arg: UnsafeMutableRawPointer?) {
    bufferSource = get.map { ($0, arg) }
  }

  /// The binding's memory for a read of `size` bytes, if it gives some.
  func lentBuffer(token: UInt64, size: Int) -> UnsafeMutableRawPointer? {
    guard let (get, arg) = bufferSource else { return nil }
    return get(arg, token, size)
  }

  func received(_ count: Int, at offset: Int, _ transport: StreamTransport, _ handle: UInt64, token: UInt64) {
    filling.used = offset + count
    recordRead(AIOS_IO_DATA, offset: offset, count, transport, handle, token: token)
  }

  /// A read into the binding's memory.
  func received(_ count: Int, into memory: UnsafeMutableRawPointer, _ transport: StreamTransport,
                _ handle: UInt64, token: UInt64) {
    recordRead(AIOS_IO_DATA_BUFFER, offset: Int(bitPattern: memory), count, transport, handle, token: token)
  }

  /// The binding's memory back unused: the read got no bytes.
  func returned(_ memory: UnsafeMutableRawPointer, _ handle: UInt64, token: UInt64) {
    record(AIOS_IO_DATA_BUFFER, handle, token: token, offset: Int(bitPattern: memory), length: 0)
  }

  private func recordRead(_ kind: aios_io_event_kind_t, offset: Int, _ count: Int, _ transport: StreamTransport,
                          _ handle: UInt64, token: UInt64) {
    record(kind, handle, token: token, offset: offset, length: count)
    guard transport.suspendForBatch() else { return }   // listed
    if let last = lastSuspended { last.nextSuspended = transport } else { firstSuspended = transport }
    lastSuspended = transport
  }

  /// Hands the filled buffers over and starts filling the others.
  func take() -> (UnsafePointer<aios_io_event_t>?, Int, UnsafePointer<UInt8>) {
    if !lent.isEmpty {
      for handle in lent { _ = ObjectTable.release(handle) }
      lent.removeAll(keepingCapacity: true)
    }
    if !lentNow.isEmpty { swap(&lent, &lentNow) }
    notified = false
    swap(&filling, &handed)
    handedInUse = true
    filling.count = 0
    filling.used = 0
    var next = firstSuspended.take()
    lastSuspended = nil
    while let transport = next {
      next = transport.nextSuspended.take()
      transport.resumeAfterBatch()
    }
    return (handed.count == 0 ? nil : UnsafePointer(handed.events), handed.count,
            UnsafePointer(handed.arena.assumingMemoryBound(to: UInt8.self)))
  }
}

/// A batched protocol: records events with its token. From connection_made
/// to connection_lost it holds one C reference to its transport, which its
/// events lend.
final class BatchProtocol: LentBufferProtocol {
  private let token: UInt64
  let argument: OwnedArgument
  private var transport: StreamTransport?
  private var handle: UInt64 = 0
  private var batch: IOBatch?
  private var reservedOffset = 0
  /// The binding's memory the read under way goes to, and its size.
  private var lent: UnsafeMutableRawPointer?
  private var lentSize = 0
  /// What the next read asks the binding for: 0 for the arena.
  private var nextLentSize = 0

  init(_ table: aios_protocol_t) {
    token = table.token
    argument = OwnedArgument(table.arg, table.destroy)
  }

  deinit { batch?.release(afterHandingOver: handle) }

  func connectionMade(_ transport: StreamTransport) {
    self.transport = transport
    handle = ObjectTable.export(transport, .transport) ?? 0
    let batch = IOBatch.of(transport.loop)
    self.batch = batch
    batch.record(AIOS_IO_CONNECTED, handle, token: token)
  }

  func getBuffer(sizeHint: Int) throws -> UnsafeMutableRawBufferPointer {
    if nextLentSize > 0, let memory = borrow() { return memory }
    guard let batch else { throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue) }
    let (buffer, offset) = batch.reserve(max(sizeHint, 1 << 16))
    reservedOffset = offset
    return buffer
  }

  /// The binding's memory for the next read, if it gives some. Out of line:
  /// small reads, the most, do not come here.
  @inline(never)
  private func borrow() -> UnsafeMutableRawBufferPointer? {
    bufferUnused()
    guard let memory = batch?.lentBuffer(token: token, size: nextLentSize) else { return nil }
    lent = memory
    lentSize = nextLentSize
    return UnsafeMutableRawBufferPointer(start: memory, count: lentSize)
  }

  /// The size the binding's memory for the read after one of `count`
  /// bytes has (aios_loop_set_io_buffer_callback): a read that filled
  /// its memory may have left more behind.
  private static func lentSize(after count: Int, filled: Bool) -> Int {
    guard count >= Int(AIOS_IO_BUFFER_MIN) else { return 0 }
    // One byte more: reads of one size each time (a protocol's messages)
    // then do not fill it, and do not double it every other read.
    let size = (count + 1 + 4095) & ~4095
    return min(filled ? size * 2 : size, readArenaSize)
  }

  func bufferUpdated(_ count: Int) {
    // Borrowed, not retained: this protocol holds both, and recording runs
    // no code that could let go of them.
    guard let transport = transport.map(Unmanaged.passUnretained),
          let batch = batch.map(Unmanaged.passUnretained) else { return }
    if let memory = lent {
      lent = nil
      nextLentSize = Self.lentSize(after: count, filled: count == lentSize)
      batch._withUnsafeGuaranteedRef { batch in
        transport._withUnsafeGuaranteedRef { batch.received(count, into: memory, $0, handle, token: token) }
      }
      return
    }
    nextLentSize = Self.lentSize(after: count, filled: false)
    batch._withUnsafeGuaranteedRef { batch in
      transport._withUnsafeGuaranteedRef { batch.received(count, at: reservedOffset, $0, handle, token: token) }
    }
  }

  func bufferUnused() {
    guard let memory = lent else { return }
    lent = nil
    batch?.returned(memory, handle, token: token)
  }

  func eofReceived() -> Bool {
    bufferUnused()
    batch?.record(AIOS_IO_EOF, handle, token: token)
    return true
  }

  func connectionLost(_ error: (any Error)?) {
    bufferUnused()
    guard let batch, transport != nil else { return }
    batch.record(AIOS_IO_LOST, handle, token: token, status: error.map(statusCode(of:)) ?? 0)
    batch.release(afterHandingOver: handle)
    handle = 0
    transport = nil
  }

  func pauseWriting() { if transport != nil { batch?.record(AIOS_IO_PAUSE_WRITING, handle, token: token) } }
  func resumeWriting() { if transport != nil { batch?.record(AIOS_IO_RESUME_WRITING, handle, token: token) } }
}

extension IOBatch {
  /// The binding is done with what the last take handed over. The next reads
  /// go to the arena just read, still in the CPU's cache: 10 reads of 16 KiB
  /// are 160 KiB, and two such arenas alternating leave the first level of
  /// cache behind on every read (about 4% of an echo server's CPU time).
  func releaseHanded() {
    guard handedInUse else { return }
    handedInUse = false
    handed.count = 0
    handed.used = 0
    if filling.used == 0 {
      swap(&filling.arena, &handed.arena)
      swap(&filling.arenaCapacity, &handed.arenaCapacity)
    }
  }
}

@_cdecl("aios_loop_take_io_events")
public func aios_loop_take_io_events(_ loop: OpaquePointer?, _ events: UnsafeMutablePointer<UnsafePointer<aios_io_event_t>?>?,
                                     _ count: UnsafeMutablePointer<Int>?,
                                     _ arena: UnsafeMutablePointer<UnsafePointer<UInt8>?>?) -> Int32 {
  status {
    try withObject(loop, .loop, as: Loop.self) { loop in
      guard let events, let count else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      try loop.checkUsable()
      let (list, number, bytes) = IOBatch.of(loop).take()
      events.pointee = list
      count.pointee = number
      arena?.pointee = bytes
    }
  }
}

@_cdecl("aios_loop_set_io_events_callback")
public func aios_loop_set_io_events_callback(_ loop: OpaquePointer?, _ callback: aios_callback_fn?,
                                             _ arg: UnsafeMutableRawPointer?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    try loop.checkUsable()
    IOBatch.of(loop).setNotify(callback, arg)
  }
}

@_cdecl("aios_loop_set_io_buffer_callback")
public func aios_loop_set_io_buffer_callback(_ loop: OpaquePointer?, _ get: aios_io_buffer_fn?,
                                             _ arg: UnsafeMutableRawPointer?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    try loop.checkUsable()
    IOBatch.of(loop).setBufferSource(get, arg)
  }
}

@_cdecl("aios_loop_release_io_events")
public func aios_loop_release_io_events(_ loop: OpaquePointer?) -> Int32 {
  status {
    try withObject(loop, .loop, as: Loop.self) { loop in
      try loop.checkUsable()
      (loop.bindingState as? IOBatch)?.releaseHanded()
    }
  }
}
