// The objects C holds. A C pointer (aios_loop_t *, aios_future_t *, ...) is
// not an address but a handle: a slot index and the slot's generation. Each
// slot keeps one Swift reference and counts C's references; when C drops
// the last one the generation moves on, so a freed handle, a handle of the
// wrong type, or a made-up pointer is an error code rather than a crash.
import AioSwift
import CAioSwift
import CLibUV
import Glibc
import Synchronization

/// The object types of the header's aios_object_type_t, as slot tags.
enum ObjectType: UInt32 {
  case loop = 1, handle, future, task, error, runner
  case lock, event, condition, semaphore, barrier, queue, timeout, taskGroup, asCompleted
}

/// Objects that remember their handle, so C gets the same one back.
protocol ForeignObject: AnyObject {
  var foreignHandle: UInt64 { get set }
}
extension Loop: ForeignObject {}
extension Handle: ForeignObject {}
extension AnyFuture: ForeignObject {}
extension Runner: ForeignObject {}
extension LoopBound: ForeignObject {}

/// An error as C holds it: the Swift error and its message as a C string.
final class ErrorObject: ForeignObject {
  let error: any Error
  let message: UnsafeMutablePointer<CChar>
  var foreignHandle: UInt64 = 0

  init(_ error: any Error) {
    self.error = error
    let text = (error as? any AsyncioError)?.message ?? String(describing: error)
    message = strdup(text)
    LiveObjects.errors.add(1, ordering: .relaxed)
  }

  deinit {
    free(message)
    LiveObjects.errors.subtract(1, ordering: .relaxed)
  }
}

private struct Slot {
  /// generation << 32 | C references (0: free).
  var word: UInt64
  var object: UnsafeMutableRawPointer?
  var type: UInt32
  var nextFree: UInt32
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
  private static let used = Mutex<UInt32>(1)

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
    (UnsafeMutableRawPointer(slot) + MemoryLayout<Slot>.offset(of: \Slot.nextFree)!)
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
        base.initialize(repeating: Slot(word: 1 << 32, object: nil, type: 0, nextFree: 0),
                        count: chunkSize)
        chunks[chunk] = UnsafeMutableRawPointer(base)
      }
      used += 1
      return index
    }
  }

  /// A new handle for `object`, holding one C reference.
  private static func allocate(_ object: AnyObject, type: ObjectType) -> UInt64? {
    guard let index = popFree() ?? grow(), let slot = slot(index) else { return nil }
    let generation = aios__atomic_load(wordPointer(slot)) >> 32
    slot.pointee.object = Unmanaged.passRetained(object).toOpaque()
    slot.pointee.type = type.rawValue
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

  /// The object a handle names if it is alive and of one of `types`.
  @inline(__always)
  static func lookup(_ handle: UInt64, _ type: ObjectType, or other: ObjectType? = nil) -> AnyObject? {
    address(handle, type, or: other).map { Unmanaged<AnyObject>.fromOpaque($0).takeUnretainedValue() }
  }

  /// The address of the object a handle names if it is alive and of one of
  /// `types`; the table's reference keeps it alive.
  @inline(__always)
  static func address(_ handle: UInt64, _ type: ObjectType, or other: ObjectType? = nil)
    -> UnsafeMutableRawPointer? {
    guard let slot = liveSlot(handle),
          slot.pointee.type == type.rawValue || slot.pointee.type == other?.rawValue else { return nil }
    return slot.pointee.object
  }

  /// Gives C one reference to `object`: its existing handle if C still
  /// holds one, else a new one.
  static func export<T: ForeignObject>(_ object: T, _ type: ObjectType) -> UInt64? {
    let existing = object.foreignHandle
    if existing != 0, lookup(existing, type) === object, retain(existing) {
      return existing
    }
    guard let handle = allocate(object, type: type) else { return nil }
    object.foreignHandle = handle
    return handle
  }

  /// One more C reference. False if the handle is not alive.
  static func retain(_ handle: UInt64) -> Bool {
    guard let slot = slot(UInt32(truncatingIfNeeded: handle)) else { return false }
    let word = wordPointer(slot)
    while true {
      let current = aios__atomic_load(word)
      guard current >> 32 == handle >> 32, current & 0xffff_ffff != 0 else { return false }
      if aios__atomic_cas(word, current, current + 1) != 0 { return true }
    }
  }

  /// One C reference less; the last one frees the slot and releases the
  /// object. `willFree` runs first when it is the last one (a loop closes).
  /// False if the handle is not alive.
  static func release(_ handle: UInt64, willFree: ((AnyObject) -> Void)? = nil) -> Bool {
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
    let object = Unmanaged<AnyObject>.fromOpaque(slot.pointee.object!)
    slot.pointee.object = nil
    let type = slot.pointee.type
    pushFree(index)
    let value = object.takeUnretainedValue()
    forgetHandle(value, type: type, handle)
    willFree?(value)
    object.release()
    return true
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
  case .taskGroup: forget(unsafeDowncast(object, to: TaskGroup.self))
  case .asCompleted: forget(unsafeDowncast(object, to: AsCompleted.self))
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

/// Hands C one reference to `object` through `out`.
@inline(__always)
func give<T: ForeignObject>(_ object: T, _ type: ObjectType,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
  guard let out else { return }
  guard let handle = ObjectTable.export(object, type) else {
    throw RuntimeError(code: AIOS_ENOMEM.rawValue, "too many live objects")
  }
  out.pointee = pointer(handle)
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
