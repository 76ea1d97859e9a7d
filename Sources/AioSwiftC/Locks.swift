// Synchronization primitives: Lock, Event, Condition, Semaphore, Barrier.
import AioSwift
import CAioSwift

/// withObject for a primitive, on its loop's thread, the loop open.
@inline(__always)
func withPrimitive<T: LoopBound, R>(_ p: OpaquePointer?, _ type: ObjectType, as _: T.Type,
                                    _ body: (T) throws -> R) throws -> R {
  try withObject(p, type, as: T.self) { primitive in
    try primitive.checkLoop()
    return try body(primitive)
  }
}

/// withPrimitive for a call that runs user code on the way (a predicate, a
/// destructor), which may drop the last reference to the primitive: the
/// call holds one of its own until it returns.
func withPrimitiveHeld<T: LoopBound, R>(_ p: OpaquePointer?, _ type: ObjectType, as _: T.Type,
                                        _ body: (T) throws -> R) throws -> R {
  let primitive = try object(p, type, as: T.self)
  return try withExtendedLifetime(primitive) {
    try primitive.checkLoop()
    return try body(primitive)
  }
}

/// Hands out the future of an operation, or a done one if it did not block.
func giveOperation(_ operation: AnyFuture?, of primitive: LoopBound,
                   _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
  let future = try operation ?? primitive.loop().doneFuture
  try give(future, .future, out)
}

/// Runs `body` for a call that hands back a future; checks `out` first.
@inline(__always)
func operationCall(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ body: () throws -> Void) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try body()
  }
}

@inline(__always)
func newPrimitive<T: LoopBound>(_ loop: OpaquePointer?, _ type: ObjectType,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?,
                                _ make: (Loop) throws -> T) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    try loop.checkUsable()
    try give(try make(loop), type, out)
  }
}

// MARK: Lock

@_cdecl("aios_lock_new")
public func aios_lock_new(_ loop: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  newPrimitive(loop, .lock, out) { Lock(loop: $0) }
}

@_cdecl("aios_lock_acquire")
public func aios_lock_acquire(_ lock: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try withPrimitive(lock, .lock, as: Lock.self) { lock in
      try giveOperation(try lock.acquireOperation(), of: lock, out)
    }
  }
}

@_cdecl("aios_lock_release")
public func aios_lock_release(_ lock: OpaquePointer?) -> Int32 {
  status {
    try withPrimitive(lock, .lock, as: Lock.self) { lock in
      try lock.release()
    }
  }
}

@_cdecl("aios_lock_locked")
public func aios_lock_locked(_ lock: OpaquePointer?) -> Int32 {
  count { try withPrimitive(lock, .lock, as: Lock.self) { $0.isLocked ? 1 : 0 } }
}

@_cdecl("aios_lock_ref")
public func aios_lock_ref(_ lock: OpaquePointer?) -> Int32 { refObject(lock, .lock) }

@_cdecl("aios_lock_unref")
public func aios_lock_unref(_ lock: OpaquePointer?) -> Int32 { unrefObject(lock, .lock) }

// MARK: Event

@_cdecl("aios_event_new")
public func aios_event_new(_ loop: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  newPrimitive(loop, .event, out) { Event(loop: $0) }
}

@_cdecl("aios_event_set")
public func aios_event_set(_ event: OpaquePointer?) -> Int32 {
  status {
    try withPrimitive(event, .event, as: Event.self) { event in
      event.set()
    }
  }
}

@_cdecl("aios_event_clear")
public func aios_event_clear(_ event: OpaquePointer?) -> Int32 {
  status {
    try withPrimitive(event, .event, as: Event.self) { event in
      event.clear()
    }
  }
}

@_cdecl("aios_event_is_set")
public func aios_event_is_set(_ event: OpaquePointer?) -> Int32 {
  count { try withPrimitive(event, .event, as: Event.self) { $0.isSet ? 1 : 0 } }
}

@_cdecl("aios_event_wait")
public func aios_event_wait(_ event: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try withPrimitive(event, .event, as: Event.self) { event in
      try giveOperation(try event.waitOperation(), of: event, out)
    }
  }
}

@_cdecl("aios_event_ref")
public func aios_event_ref(_ event: OpaquePointer?) -> Int32 { refObject(event, .event) }

@_cdecl("aios_event_unref")
public func aios_event_unref(_ event: OpaquePointer?) -> Int32 { unrefObject(event, .event) }

// MARK: Condition

@_cdecl("aios_condition_new")
public func aios_condition_new(_ loop: OpaquePointer?, _ lock: OpaquePointer?,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  newPrimitive(loop, .condition, out) { loop in
    let lock = try lock.map { try withPrimitive($0, .lock, as: Lock.self) { $0 } }
    if let lock, try lock.loop() !== loop { throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue) }
    return Condition(lock: lock, loop: loop)
  }
}

@_cdecl("aios_condition_acquire")
public func aios_condition_acquire(_ condition: OpaquePointer?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try withPrimitive(condition, .condition, as: Condition.self) { condition in
      try giveOperation(try condition.acquireOperation(), of: condition, out)
    }
  }
}

@_cdecl("aios_condition_release")
public func aios_condition_release(_ condition: OpaquePointer?) -> Int32 {
  status {
    try withPrimitive(condition, .condition, as: Condition.self) { condition in
      try condition.release()
    }
  }
}

@_cdecl("aios_condition_locked")
public func aios_condition_locked(_ condition: OpaquePointer?) -> Int32 {
  count { try withPrimitive(condition, .condition, as: Condition.self) { $0.isLocked ? 1 : 0 } }
}

@_cdecl("aios_condition_wait")
public func aios_condition_wait(_ condition: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try withPrimitive(condition, .condition, as: Condition.self) { condition in
      try give(try condition.waitOperation(), .future, out)
    }
  }
}

@_cdecl("aios_condition_wait_for")
public func aios_condition_wait_for(_ condition: OpaquePointer?, _ predicate: aios_predicate_fn?,
                                    _ arg: UnsafeMutableRawPointer?,
                                    _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try withPrimitiveHeld(condition, .condition, as: Condition.self) { condition in
      guard let predicate else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      let operation = try condition.waitForOperation {
        let verdict = predicate(arg)
        if verdict < 0 { throw makeError(code: verdict, message: nil) }
        return verdict != 0
      }
      try giveOperation(operation, of: condition, out)
    }
  }
}

@_cdecl("aios_condition_notify")
public func aios_condition_notify(_ condition: OpaquePointer?, _ n: Int32) -> Int32 {
  status {
    try withPrimitive(condition, .condition, as: Condition.self) { condition in
      guard n >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      try condition.notify(Int(n))
    }
  }
}

@_cdecl("aios_condition_notify_all")
public func aios_condition_notify_all(_ condition: OpaquePointer?) -> Int32 {
  status {
    try withPrimitive(condition, .condition, as: Condition.self) { condition in
      try condition.notifyAll()
    }
  }
}

@_cdecl("aios_condition_ref")
public func aios_condition_ref(_ condition: OpaquePointer?) -> Int32 { refObject(condition, .condition) }

@_cdecl("aios_condition_unref")
public func aios_condition_unref(_ condition: OpaquePointer?) -> Int32 { unrefObject(condition, .condition) }

// MARK: Semaphore

@_cdecl("aios_semaphore_new")
public func aios_semaphore_new(_ loop: OpaquePointer?, _ value: UInt32, _ bounded: Int32,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  newPrimitive(loop, .semaphore, out) { try Semaphore(value: Int(value), bounded: bounded != 0, loop: $0) }
}

@_cdecl("aios_semaphore_acquire")
public func aios_semaphore_acquire(_ semaphore: OpaquePointer?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try withPrimitive(semaphore, .semaphore, as: Semaphore.self) { semaphore in
      try giveOperation(try semaphore.acquireOperation(), of: semaphore, out)
    }
  }
}

@_cdecl("aios_semaphore_release")
public func aios_semaphore_release(_ semaphore: OpaquePointer?) -> Int32 {
  status {
    try withPrimitive(semaphore, .semaphore, as: Semaphore.self) { semaphore in
      try semaphore.release()
    }
  }
}

@_cdecl("aios_semaphore_locked")
public func aios_semaphore_locked(_ semaphore: OpaquePointer?) -> Int32 {
  count { try withPrimitive(semaphore, .semaphore, as: Semaphore.self) { $0.isLocked ? 1 : 0 } }
}

@_cdecl("aios_semaphore_ref")
public func aios_semaphore_ref(_ semaphore: OpaquePointer?) -> Int32 { refObject(semaphore, .semaphore) }

@_cdecl("aios_semaphore_unref")
public func aios_semaphore_unref(_ semaphore: OpaquePointer?) -> Int32 { unrefObject(semaphore, .semaphore) }

// MARK: Barrier

@_cdecl("aios_barrier_new")
public func aios_barrier_new(_ loop: OpaquePointer?, _ parties: UInt32,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  newPrimitive(loop, .barrier, out) { loop in
    // aios_barrier_parties answers in an int.
    guard parties <= Int32.max else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    return try Barrier(parties: Int(parties), loop: loop)
  }
}

@_cdecl("aios_barrier_wait")
public func aios_barrier_wait(_ barrier: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try give(try withPrimitive(barrier, .barrier, as: Barrier.self) { try $0.waitOperation() }, .future, out)
  }
}

@_cdecl("aios_barrier_reset")
public func aios_barrier_reset(_ barrier: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try give(try withPrimitive(barrier, .barrier, as: Barrier.self) { try $0.resetOperation() }, .future, out)
  }
}

@_cdecl("aios_barrier_abort")
public func aios_barrier_abort(_ barrier: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try give(try withPrimitive(barrier, .barrier, as: Barrier.self) { try $0.abortOperation() }, .future, out)
  }
}

@_cdecl("aios_barrier_parties")
public func aios_barrier_parties(_ barrier: OpaquePointer?) -> Int32 {
  count { try withPrimitive(barrier, .barrier, as: Barrier.self) { $0.parties } }
}

@_cdecl("aios_barrier_n_waiting")
public func aios_barrier_n_waiting(_ barrier: OpaquePointer?) -> Int32 {
  count { try withPrimitive(barrier, .barrier, as: Barrier.self) { $0.waiting } }
}

@_cdecl("aios_barrier_broken")
public func aios_barrier_broken(_ barrier: OpaquePointer?) -> Int32 {
  count { try withPrimitive(barrier, .barrier, as: Barrier.self) { $0.isBroken ? 1 : 0 } }
}

@_cdecl("aios_barrier_ref")
public func aios_barrier_ref(_ barrier: OpaquePointer?) -> Int32 { refObject(barrier, .barrier) }

@_cdecl("aios_barrier_unref")
public func aios_barrier_unref(_ barrier: OpaquePointer?) -> Int32 { unrefObject(barrier, .barrier) }
