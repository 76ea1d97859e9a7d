// The objects C holds. A C pointer (aios_loop_t *, aios_future_t *, ...) is
// not an address but a handle: a slot index and the slot's generation. Each
// slot keeps one Swift reference and counts C's references; when C drops
// the last one the generation moves on, so a freed handle, a handle of the
// wrong type, or a made-up pointer is an error code rather than a crash.
//
// Threads. The library is built with non-atomic reference counting (see
// the Makefile), which is sound only if each Swift object's count changes
// on one thread. So every object belongs to a thread (its slot's owner):
// a call from another thread is refused by the table before the object is
// touched; C's counts live in the slots and are atomic; a last reference
// dropped elsewhere is released by the owner (DeferredReleases); error
// objects, which any thread may use, share no Swift object with the loops
// (ErrorObject); and call_soon_threadsafe builds its handle without counting
// a reference to the loop. Tests/c/test_threads.c checks this under helgrind.
import AioSwift
import CAioSwift
import CLibUV
import Glibc
import Synchronization

/// The object types of the header's aios_object_type_t, as slot tags.
enum ObjectType: UInt32 {
  case loop = 1, handle, future, task, error, runner
  case lock, event, condition, semaphore, barrier, queue, timeout, taskGroup, asCompleted
  case transport, server, stream, subprocess, process, datagram
}

/// Objects that remember their handle, so C gets the same one back.
protocol ForeignObject: AnyObject {
  var foreignHandle: UInt64 { get set }
  /// The loop to wake when the object's last C reference is dropped on
  /// another thread (unretained), if it has one.
  var foreignLoop: UnsafeMutableRawPointer? { get }
  /// Whether any thread may use the object (errors); the others belong to
  /// the thread that first hands them to C.
  static var usableFromAnyThread: Bool { get }
}
extension ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { nil }
  static var usableFromAnyThread: Bool { false }
}
extension Loop: ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { Unmanaged.passUnretained(self).toOpaque() }
}
extension Handle: ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { loopAddress }
}
extension AnyFuture: ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { Unmanaged.passUnretained(loop).toOpaque() }
}
extension Runner: ForeignObject {}
extension StreamTransport: ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { Unmanaged.passUnretained(loop).toOpaque() }
}
extension Server: ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { Unmanaged.passUnretained(loop).toOpaque() }
}
extension LoopBound: ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { boundLoopAddress }
}

/// An error as C holds it: an immutable description any thread may read.
/// It shares no Swift object with the loops (reference counts belong to the
/// loop's thread): a future failed with it gets an error value of its own
/// (swiftError), which refers back to it by a C reference where identity
/// matters (a user error's data). Fields are plain memory, so reading them
/// never touches a reference count.
final class ErrorObject: ForeignObject {
  static var usableFromAnyThread: Bool { true }
  let code: Int32
  let message: UnsafeMutablePointer<CChar>
  let userData: UnsafeMutableRawPointer?
  /// Frees userData with the error (errors made by aios_error_new_user).
  var userDestructor: aios_destructor_fn?
  /// A group's errors, as C handles holding one reference each.
  let children: UnsafeMutableBufferPointer<UInt64>
  /// An incomplete read's bytes and expected count (-1: none), a limit
  /// overrun's consumed count.
  /// Plain memory, not an array: any thread reads it, and an array's
  /// reference count belongs to one thread.
  var partial = UnsafeMutableRawBufferPointer(start: nil, count: 0)
  var expected: Int64 = -1
  var consumed: Int64 = 0
  /// A cancelled send's count of bytes sent (-1: none).
  var bytesSent: Int64 = -1
  var foreignHandle: UInt64 = 0

  init(code: Int32, message: String, userData: UnsafeMutableRawPointer? = nil,
       userDestructor: aios_destructor_fn? = nil, children: [UInt64] = []) {
    self.code = code
    self.message = strdup(message)
    self.userData = userData
    self.userDestructor = userDestructor
    self.children = .allocate(capacity: children.count)
    _ = self.children.initialize(from: children)
    LiveObjects.errors.add(1, ordering: .relaxed)
  }

  deinit {
    free(message)
    for child in children { _ = ObjectTable.release(child) }
    children.deallocate()
    userDestructor?(userData)
    partial.deallocate()
    LiveObjects.errors.subtract(1, ordering: .relaxed)
  }

  var isUserError: Bool { code == AIOS_EUSER.rawValue }

  /// A Swift error for the loop's side (a future's or a task's), made on
  /// the loop's thread; `handle` names this object.
  func swiftError(handle: UInt64) -> any Error {
    let text = String(cString: message)
    if isUserError, ObjectTable.retain(handle) {
      return UserError(text, payload: UserError.Payload(data: userData, foreignError: handle) {
        _ = ObjectTable.release($0)
      })
    }
    if code == AIOS_EINCOMPLETE.rawValue {
      var error = IncompleteReadError(partial: [UInt8](partial), expected: expected < 0 ? nil : Int(expected))
      error.message = text
      return error
    }
    if code == AIOS_ELIMIT.rawValue { return LimitOverrunError(text, consumed: Int(consumed)) }
    if code == AIOS_ECANCELLED.rawValue { return CancelledError(text, bytesSent: bytesSent < 0 ? nil : Int(bytesSent)) }
    if code == AIOS_EGROUP.rawValue {
      return TaskGroupError(children.map { child in
        ObjectTable.withError(child) { $0.swiftError(handle: child) } ?? RuntimeError(code: AIOS_EBADHANDLE.rawValue)
      })
    }
    return makeError(code: code, message: text)
  }
}

/// One C reference to an error object describing `error`: the very object
/// a user error came from, else a new description.
func exportError(_ error: any Error) -> UInt64? {
  if let payload = (error as? UserError)?.payload, payload.foreignError != 0,
     ObjectTable.retain(payload.foreignError) {
    return payload.foreignError
  }
  var children: [UInt64] = []
  if let group = error as? TaskGroupError {
    for child in group.errors {
      guard let handle = exportError(child) else {
        for handle in children { _ = ObjectTable.release(handle) }
        return nil
      }
      children.append(handle)
    }
  }
  let text = (error as? any AsyncioError)?.message ?? String(describing: error)
  let object = ErrorObject(code: statusCode(of: error), message: text,
                           userData: (error as? UserError)?.payload?.data, children: children)
  if let incomplete = error as? IncompleteReadError {
    object.partial = .allocate(byteCount: incomplete.partial.count, alignment: 1)
    object.partial.copyBytes(from: incomplete.partial)
    object.expected = incomplete.expected.map { Int64($0) } ?? -1
  } else if let overrun = error as? LimitOverrunError {
    object.consumed = Int64(overrun.consumed)
  } else if let sent = (error as? CancelledError)?.bytesSent {
    object.bytesSent = Int64(sent)
  }
  return ObjectTable.export(object, .error)
}

private struct Slot {
  /// generation << 32 | C references (0: free).
  var word: UInt64
  var object: UnsafeMutableRawPointer?
  /// The object's loop, to wake (see ForeignObject.foreignLoop).
  var loop: UnsafeMutableRawPointer?
  var type: UInt32
  /// A live slot: the number of the thread its object belongs to
  /// (aiosi_thread_token), 0 for objects any thread may use. A free slot:
  /// the next free index + 1.
  var link: UInt32
}

private let chunkBits = 12
private let chunkSize = 1 << chunkBits
private let chunkCount = Int(AIOSI_HANDLE_CHUNKS)  // 16M slots at most

/// The one table of C handles in the process, in C globals (see
/// aios_runtime.h). Lookups, reference counts and the free list are
/// lock-free; only growing the table takes a lock.
enum ObjectTable {
  /// The chunks of slots, allocated as the table grows and never freed.
  @inline(__always)
  private static var chunks: UnsafeMutablePointer<UnsafeMutableRawPointer?> { aiosi_handle_chunk_table() }
  /// The free list's head: a tag << 32 | (slot index + 1), 0 below when
  /// empty. Every push and pop changes the tag, so a compare-and-swap fails
  /// on a head that was popped and pushed back meanwhile (ABA).
  @inline(__always)
  private static var freeHead: UnsafeMutablePointer<UInt64> { aiosi_handle_free_list() }
  /// Indexes handed out so far; index 0 is never used.
  private static let used = ThreadLock<UInt32>(1)

  @inline(__always)
  private static func slot(_ index: UInt32) -> UnsafeMutablePointer<Slot>? {
    let chunk = Int(index) >> chunkBits
    guard chunk < chunkCount, let base = chunks[chunk] else { return nil }
    return base.assumingMemoryBound(to: Slot.self) + (Int(index) & (chunkSize - 1))
  }

  @inline(__always)
  private static func wordPointer(_ slot: UnsafeMutablePointer<Slot>) -> UnsafeMutablePointer<UInt64> {
    UnsafeMutableRawPointer(slot).assumingMemoryBound(to: UInt64.self)
  }

  @inline(__always)
  private static func nextFreePointer(_ slot: UnsafeMutablePointer<Slot>) -> UnsafeMutablePointer<UInt32> {
    (UnsafeMutableRawPointer(slot) + MemoryLayout<Slot>.offset(of: \Slot.link)!)
      .assumingMemoryBound(to: UInt32.self)
  }

  private static func popFree() -> UInt32? {
    while true {
      let head = aios__atomic_load(freeHead)
      let entry = UInt32(truncatingIfNeeded: head)
      guard entry != 0 else { return nil }
      // A stale read here only makes the compare-and-swap fail.
      let next = aios__atomic_load32(nextFreePointer(slot(entry - 1)!))
      if aios__atomic_cas(freeHead, head, (head >> 32 &+ 1) << 32 | UInt64(next)) != 0 { return entry - 1 }
    }
  }

  private static func pushFree(_ index: UInt32) {
    let next = nextFreePointer(slot(index)!)
    while true {
      let head = aios__atomic_load(freeHead)
      aios__atomic_store32(next, UInt32(truncatingIfNeeded: head))
      if aios__atomic_cas(freeHead, head, (head >> 32 &+ 1) << 32 | UInt64(index + 1)) != 0 { return }
    }
  }

  /// A never used index, adding a chunk of slots when needed.
  private static func grow() -> UInt32? {
    used.withLock { used in
      let index = used
      let chunk = Int(index) >> chunkBits
      guard chunk < chunkCount else { return nil }
      if chunks[chunk] == nil {
        let base = UnsafeMutablePointer<Slot>.allocate(capacity: chunkSize)
        base.initialize(repeating: Slot(word: 1 << 32, object: nil, loop: nil, type: 0, link: 0),
                        count: chunkSize)
        chunks[chunk] = UnsafeMutableRawPointer(base)
      }
      used += 1
      return index
    }
  }

  /// A new handle for `object`, holding one C reference.
  private static func allocate(_ object: AnyObject, type: ObjectType, owner: UInt32,
                               loop: UnsafeMutableRawPointer?) -> UInt64? {
    guard let index = popFree() ?? grow(), let slot = slot(index) else { return nil }
    let generation = aios__atomic_load(wordPointer(slot)) >> 32
    slot.pointee.object = Unmanaged.passRetained(object).toOpaque()
    slot.pointee.type = type.rawValue
    slot.pointee.link = owner
    slot.pointee.loop = loop
    aios__atomic_store(wordPointer(slot), generation << 32 | 1)
    return generation << 32 | UInt64(index)
  }

  /// The live slot a handle names, or nil.
  @inline(__always)
  private static func liveSlot(_ handle: UInt64) -> UnsafeMutablePointer<Slot>? {
    guard let slot = slot(UInt32(truncatingIfNeeded: handle)) else { return nil }
    let word = aios__atomic_load(wordPointer(slot))
    guard word >> 32 == handle >> 32, word & 0xffff_ffff != 0 else { return nil }
    return slot
  }

  /// The address of the object a handle names if it is alive and of one of
  /// `types`, whatever thread asks; the table's reference keeps it alive.
  @inline(__always)
  static func address(_ handle: UInt64, _ type: ObjectType, or other: ObjectType? = nil)
    -> UnsafeMutableRawPointer? {
    guard let slot = liveSlot(handle),
          slot.pointee.type == type.rawValue || slot.pointee.type == other?.rawValue else { return nil }
    return slot.pointee.object
  }

  /// address(), for a call that must be made on the object's own thread:
  /// a call from another thread is refused before it touches the object.
  @inline(__always)
  static func ownAddress(_ handle: UInt64, _ type: ObjectType, or other: ObjectType? = nil) throws
    -> UnsafeMutableRawPointer {
    guard let slot = liveSlot(handle),
          slot.pointee.type == type.rawValue || slot.pointee.type == other?.rawValue,
          let object = slot.pointee.object else { throw badHandle(pointer(handle)) }
    let owner = slot.pointee.link
    guard owner == 0 || owner == aiosi_thread_token() else {
      throw RuntimeError(code: AIOS_EWRONGTHREAD.rawValue)
    }
    return object
  }

  /// Runs `body` with the error object a handle names, from any thread.
  @inline(__always)
  static func withError<R>(_ handle: UInt64, _ body: (ErrorObject) throws -> R) rethrows -> R? {
    guard let address = address(handle, .error) else { return nil }
    return try Unmanaged<ErrorObject>.fromOpaque(address)._withUnsafeGuaranteedRef(body)
  }

  /// Gives C one reference to `object`: its existing handle if C still
  /// holds one, else a new one. The object belongs to `owner` (a thread
  /// token; by default the calling thread's).
  static func export<T: ForeignObject>(_ object: T, _ type: ObjectType, owner: UInt32? = nil) -> UInt64? {
    let existing = object.foreignHandle
    if existing != 0, address(existing, type) == Unmanaged.passUnretained(object).toOpaque(),
       retain(existing) {
      return existing
    }
    let owner = T.usableFromAnyThread ? 0 : owner ?? aiosi_thread_token()
    guard let handle = allocate(object, type: type, owner: owner, loop: object.foreignLoop) else { return nil }
    object.foreignHandle = handle
    // A loop C names has the C layer's interface before C can make objects of it.
    if type == .loop { unsafeDowncast(object as AnyObject, to: Loop.self).useForeignInterface(cInterface) }
    return handle
  }

  /// How many C references a live handle holds (0: not alive).
  static func referenceCount(_ handle: UInt64) -> UInt32 {
    guard let slot = slot(UInt32(truncatingIfNeeded: handle)) else { return 0 }
    let current = aios__atomic_load(wordPointer(slot))
    return current >> 32 == handle >> 32 ? UInt32(truncatingIfNeeded: current) : 0
  }

  /// One more C reference. False if the handle is not alive, or already
  /// holds 2^32 - 1 references (one more would spill into the generation).
  static func retain(_ handle: UInt64) -> Bool {
    guard let slot = slot(UInt32(truncatingIfNeeded: handle)) else { return false }
    let word = wordPointer(slot)
    while true {
      let current = aios__atomic_load(word)
      let count = current & 0xffff_ffff
      guard current >> 32 == handle >> 32, count != 0, count != 0xffff_ffff else { return false }
      if aios__atomic_cas(word, current, current + 1) != 0 { return true }
    }
  }

  /// One C reference less; the last one frees the slot and releases the
  /// object (closing a loop nobody else can reach). An object that belongs
  /// to another thread is released there (see DeferredReleases). False if
  /// the handle is not alive.
  static func release(_ handle: UInt64, onThisThread: Bool = false) -> Bool {
    let index = UInt32(truncatingIfNeeded: handle)
    guard let slot = slot(index) else { return false }
    let word = wordPointer(slot)
    while true {
      let current = aios__atomic_load(word)
      let count = current & 0xffff_ffff
      guard current >> 32 == handle >> 32, count != 0 else { return false }
      if count > 1 {
        if aios__atomic_cas(word, current, current - 1) != 0 { return true }
        continue
      }
      // The last reference: move to the next generation, then free.
      if aios__atomic_cas(word, current, (current >> 32 &+ 1) << 32) != 0 { break }
    }
    let object = slot.pointee.object!
    let type = slot.pointee.type
    let owner = slot.pointee.link
    let loop = slot.pointee.loop
    slot.pointee.object = nil
    slot.pointee.loop = nil
    pushFree(index)
    if owner != 0 && owner != aiosi_thread_token() && !onThisThread {
      DeferredReleases.add(object, type: type, handle: handle, owner: owner, loop: loop)
    } else {
      finalRelease(object, type: type, handle: handle)
    }
    if aiosi_deferred_release_count() != 0 { DeferredReleases.drain() }
    return true
  }

  /// Releases C's hold on an object, on the object's own thread.
  static func finalRelease(_ address: UnsafeMutableRawPointer, type: UInt32, handle: UInt64) {
    let object = Unmanaged<AnyObject>.fromOpaque(address)
    object._withUnsafeGuaranteedRef { value in
      forgetHandle(value, type: type, handle)
      // C let go of a loop or a runner: close it now if it can be (a loop's
      // futures may keep the Swift object alive for a while longer).
      if type == ObjectType.loop.rawValue {
        unsafeDowncast(value, to: Loop.self).closeWhenUnreachable()
      } else if type == ObjectType.runner.rawValue {
        unsafeDowncast(value, to: Runner.self).closeWhenLetGo()
      }
    }
    object.release()
  }
}

/// Objects whose last C reference was dropped on a thread they do not belong
/// to. Reference counts are not atomic in the library's build, so only an
/// object's own thread may release it: the entry waits here, its loop is
/// woken, and the owner thread releases it on its next iteration or its next
/// unref, whichever comes first.
enum DeferredReleases {
  private struct Entry {
    let object: UnsafeMutableRawPointer?  // nil: a check of `handle` (addLoopCheck)
    let type: UInt32
    let handle: UInt64
    let owner: UInt32
  }
  private static let entries = ThreadLock<[Entry]>([])

  static func add(_ object: UnsafeMutableRawPointer, type: UInt32, handle: UInt64, owner: UInt32,
                  loop: UnsafeMutableRawPointer?) {
    entries.withLock { $0.append(Entry(object: object, type: type, handle: handle, owner: owner)) }
    aiosi_deferred_release_add(1)
    // The object holds its loop, so the loop is alive until it is released.
    if let loop { Unmanaged<Loop>.fromOpaque(loop)._withUnsafeGuaranteedRef { $0.wakeUp() } }
  }

  /// Another thread's unref left a loop's handle with only the references
  /// of call_soon_threadsafe handles: its own thread closes it if that is
  /// still so (see aios_loop_unref). The entry owns nothing: a loop gone
  /// meanwhile has a dead handle.
  static func addLoopCheck(_ handle: UInt64, owner: UInt32) {
    entries.withLock { $0.append(Entry(object: nil, type: ObjectType.loop.rawValue, handle: handle, owner: owner)) }
    aiosi_deferred_release_add(1)
  }

  /// Releases the entries that belong to the calling thread.
  static func drain() {
    let token = aiosi_thread_token()
    let mine = entries.withLock { entries -> [Entry] in
      let mine = entries.filter { $0.owner == token }
      if !mine.isEmpty { entries.removeAll { $0.owner == token } }
      return mine
    }
    guard !mine.isEmpty else { return }
    aiosi_deferred_release_add(-Int64(mine.count))
    for entry in mine {
      if let object = entry.object {
        ObjectTable.finalRelease(object, type: entry.type, handle: entry.handle)
      } else {
        closeIfOnlyKeepersLeft(entry.handle)
      }
    }
  }
}

/// Clears an object's remembered handle (by its type tag: a protocol cast
/// would cost a conformance lookup on every free).
private func forgetHandle(_ object: AnyObject, type: UInt32, _ handle: UInt64) {
  func forget<T: ForeignObject>(_ object: T) {
    if object.foreignHandle == handle { object.foreignHandle = 0 }
  }
  switch ObjectType(rawValue: type) {
  case .loop: forget(unsafeDowncast(object, to: Loop.self))
  case .handle: forget(unsafeDowncast(object, to: Handle.self))
  case .future, .task: forget(unsafeDowncast(object, to: AnyFuture.self))
  case .error: forget(unsafeDowncast(object, to: ErrorObject.self))
  case .runner: forget(unsafeDowncast(object, to: Runner.self))
  case .lock, .event, .condition, .semaphore, .barrier, .queue:
    forget(unsafeDowncast(object, to: LoopBound.self))
  case .timeout: forget(unsafeDowncast(object, to: Timeout.self))
  case .taskGroup: forget(unsafeDowncast(object, to: AioTaskGroup.self))
  case .asCompleted: forget(unsafeDowncast(object, to: AsCompleted.self))
  case .transport: forget(unsafeDowncast(object, to: StreamTransport.self))
  case .server: forget(unsafeDowncast(object, to: Server.self))
  case .stream: forget(unsafeDowncast(object, to: CStream.self))
  case .subprocess: forget(unsafeDowncast(object, to: SubprocessTransport.self))
  case .process: forget(unsafeDowncast(object, to: CProcess.self))
  case .datagram: forget(unsafeDowncast(object, to: DatagramTransport.self))
  case nil: break
  }
}

// MARK: Handles as C pointers

@inline(__always)
func handleValue(_ pointer: OpaquePointer?) -> UInt64 {
  UInt64(UInt(bitPattern: pointer.map { UnsafeRawPointer($0) }))
}

@inline(__always)
func pointer(_ handle: UInt64) -> OpaquePointer? {
  OpaquePointer(bitPattern: UInt(handle))
}

/// The error an invalid pointer argument gets.
@inline(__always)
func badHandle(_ pointer: OpaquePointer?) -> RuntimeError {
  RuntimeError(code: pointer == nil ? AIOS_EINVAL.rawValue : AIOS_EBADHANDLE.rawValue)
}

/// The error when the handle table has no slot left.
func tableFull() -> RuntimeError { RuntimeError(code: AIOS_ENOMEM.rawValue, "too many live objects") }

/// Hands C one reference to `object` through `out`.
@inline(__always)
func give<T: ForeignObject>(_ object: T, _ type: ObjectType,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
  guard let out else { return }
  guard let handle = ObjectTable.export(object, type) else {
    throw tableFull()
  }
  out.pointee = pointer(handle)
}

/// The C reference a protocol adapter holds to its object from
/// connection_made to connection_lost, lent to each callback.
struct CallbackReference {
  private var handle: UInt64 = 0
  var object: OpaquePointer? { pointer(handle) }
  mutating func take<T: ForeignObject>(_ object: T, _ type: ObjectType) {
    if handle == 0, let exported = ObjectTable.export(object, type) { handle = exported }
  }
  mutating func drop() {
    if handle != 0 { _ = ObjectTable.release(handle) }
    handle = 0
  }
}

/// Lends `error` to a C callback as an aios_error_t for the call (NULL for none).
func withLentError(_ error: (any Error)?, _ body: (OpaquePointer?) -> Void) {
  guard let error, let exported = exportError(error) else { return body(nil) }
  body(pointer(exported))
  _ = ObjectTable.release(exported)
}

/// Hands C one reference to an error object for `error` through `out`.
func giveError(_ error: any Error, _ out: UnsafeMutablePointer<OpaquePointer?>) throws {
  guard let handle = exportError(error) else {
    throw tableFull()
  }
  out.pointee = pointer(handle)
}

/// Runs `body` with the Swift error for the error object a C pointer names
/// (on the loop's thread, which keeps what it makes).
func withSwiftError<R>(_ p: OpaquePointer?, _ body: (any Error) throws -> R) throws -> R {
  let handle = handleValue(p)
  guard let error = ObjectTable.withError(handle, { $0.swiftError(handle: handle) }) else { throw badHandle(p) }
  return try body(error)
}

/// Lends C a handle to `object` for the length of `body`.
@inline(__always)
func lend<T: ForeignObject, R>(_ object: T, _ type: ObjectType, _ body: (OpaquePointer?) -> R) -> R {
  guard let handle = ObjectTable.export(object, type) else { return body(nil) }
  defer { _ = ObjectTable.release(handle) }
  return body(pointer(handle))
}

/// Runs `body`, turning a thrown error into its status code.
@inline(__always)
func status(_ body: () throws -> Void) -> Int32 {
  do {
    try body()
    return 0
  } catch {
    return statusCode(of: error)
  }
}

/// Like `status`, for functions that return a non-negative count.
@inline(__always)
func count(_ body: () throws -> Int) -> Int32 {
  do {
    return Int32(clamping: try body())
  } catch {
    return statusCode(of: error)
  }
}
