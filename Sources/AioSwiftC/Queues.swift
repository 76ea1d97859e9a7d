// Queues: asyncio.Queue, LifoQueue and PriorityQueue of C values.
import AioSwift
import CAioSwift

/// A C value in a queue: freed by its destructor unless taken out.
final class CItem {
  private var value: UnsafeMutableRawPointer?
  private var destructor: CDestructor?
  let priority: Int64

  init(_ value: UnsafeMutableRawPointer?, _ destructor: CDestructor?, priority: Int64) {
    self.value = value
    self.destructor = destructor
    self.priority = priority
  }

  deinit { destructor?(value) }

  /// Moves the value out: this item will not free it.
  func take() -> (UnsafeMutableRawPointer?, CDestructor?) {
    defer {
      value = nil
      destructor = nil
    }
    return (value, destructor)
  }
}

typealias CQueue = ObjectQueue

@inline(__always)
private func item(_ object: AnyObject) -> CItem { unsafeDowncast(object, to: CItem.self) }

@_cdecl("aios_queue_new")
public func aios_queue_new(_ loop: OpaquePointer?, _ kind: Int32, _ maxsize: Int,
                           _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  newPrimitive(loop, .queue, out) { loop in
    let order: CQueue.Order
    switch UInt32(bitPattern: kind) {
    case AIOS_QUEUE_FIFO.rawValue: order = .fifo
    case AIOS_QUEUE_LIFO.rawValue: order = .lifo
    case AIOS_QUEUE_PRIORITY.rawValue: order = .priority { item($0).priority < item($1).priority }
    default: throw RuntimeError(code: AIOS_EINVAL.rawValue, "unknown queue kind")
    }
    let queue = CQueue(maxsize: maxsize, order: order, loop: loop)
    // A get() that waited hands its item to its future.
    queue.deliver = { object, future in
      let (value, destructor) = item(object).take()
      unsafeDowncast(future, to: Operation.self).storeCResult(value, destructor: destructor)
    }
    return queue
  }
}

/// Puts an item; if the put fails, the caller keeps the value.
private func put(_ queue: OpaquePointer?, _ value: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?,
                 _ priority: Int64, _ body: (CQueue, CItem) throws -> Void) -> Int32 {
  status {
    try withPrimitive(queue, .queue, as: CQueue.self) { queue in
      let item = CItem(value, destructor, priority: priority)
      do {
        try body(queue, item)
      } catch {
        _ = item.take()
        throw error
      }
    }
  }
}

/// A call that waits reports asyncio's outcomes through its future, never
/// its return code (kept for bad arguments): a shut-down queue gives a
/// future failed with AIOS_EQUEUESHUTDOWN.
private func shutDownOutcome(_ queue: CQueue, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                             _ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as QueueShutDown {
    let failed = RawFuture(loop: try queue.loop())
    try failed.setError(error)
    try give(failed, .future, out)
  }
}

@_cdecl("aios_queue_put")
public func aios_queue_put(_ queue: OpaquePointer?, _ value: UnsafeMutableRawPointer?,
                           _ destructor: aios_destructor_fn?, _ priority: Int64,
                           _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  guard out != nil else { return AIOS_EINVAL.rawValue }
  // A put refused by a shut-down queue succeeds with a failed future: the
  // value was the queue's, and goes with `item`.
  return put(queue, value, destructor, priority) { queue, item in
    try shutDownOutcome(queue, out) {
      let operation = try queue.putOperation(item)
      do {
        try giveOperation(operation, of: queue, out)
      } catch {
        operation?.cancel()  // the caller gets an error: the put must not happen
        throw error
      }
    }
  }
}

@_cdecl("aios_queue_put_nowait")
public func aios_queue_put_nowait(_ queue: OpaquePointer?, _ value: UnsafeMutableRawPointer?,
                                  _ destructor: aios_destructor_fn?, _ priority: Int64) -> Int32 {
  put(queue, value, destructor, priority) { queue, item in try queue.putNowait(item) }
}

@_cdecl("aios_queue_get")
public func aios_queue_get(_ queue: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try withPrimitive(queue, .queue, as: CQueue.self) { queue in
      try shutDownOutcome(queue, out) {
        switch try queue.getOperation() {
        case .ready(let object):
          let (value, destructor) = item(object).take()
          try give(AnyFuture.done(on: try queue.loop(), value: value, destructor: destructor), .future, out)
        case .waiting(let operation):
          try give(operation, .future, out)
        }
      }
    }
  }
}

@_cdecl("aios_queue_get_nowait")
public func aios_queue_get_nowait(_ queue: OpaquePointer?, _ value: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                  _ destructor: UnsafeMutablePointer<aios_destructor_fn?>?) -> Int32 {
  status {
    try withPrimitive(queue, .queue, as: CQueue.self) { queue in
      guard let value else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      let (taken, free) = item(try queue.getNowait()).take()
      value.pointee = taken
      destructor?.pointee = free
    }
  }
}

@_cdecl("aios_queue_qsize")
public func aios_queue_qsize(_ queue: OpaquePointer?) -> Int {
  do { return try withPrimitive(queue, .queue, as: CQueue.self) { $0.count } } catch { return Int(statusCode(of: error)) }
}

@_cdecl("aios_queue_maxsize")
public func aios_queue_maxsize(_ queue: OpaquePointer?) -> Int {
  do { return try withPrimitive(queue, .queue, as: CQueue.self) { $0.maxsize } } catch { return Int(statusCode(of: error)) }
}

@_cdecl("aios_queue_empty")
public func aios_queue_empty(_ queue: OpaquePointer?) -> Int32 {
  count { try withPrimitive(queue, .queue, as: CQueue.self) { $0.isEmpty ? 1 : 0 } }
}

@_cdecl("aios_queue_full")
public func aios_queue_full(_ queue: OpaquePointer?) -> Int32 {
  count { try withPrimitive(queue, .queue, as: CQueue.self) { $0.isFull ? 1 : 0 } }
}

@_cdecl("aios_queue_task_done")
public func aios_queue_task_done(_ queue: OpaquePointer?) -> Int32 {
  status { try withPrimitive(queue, .queue, as: CQueue.self) { try $0.taskDone() } }
}

@_cdecl("aios_queue_join")
public func aios_queue_join(_ queue: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    try withPrimitive(queue, .queue, as: CQueue.self) { queue in
      try giveOperation(try queue.joinOperation(), of: queue, out)
    }
  }
}

@_cdecl("aios_queue_shutdown")
public func aios_queue_shutdown(_ queue: OpaquePointer?, _ immediate: Int32) -> Int32 {
  // An immediate shutdown runs the items' destructors.
  status { try withPrimitiveHeld(queue, .queue, as: CQueue.self) { _ = try $0.shutdown(immediate: immediate != 0) } }
}

@_cdecl("aios_queue_ref")
public func aios_queue_ref(_ queue: OpaquePointer?) -> Int32 { refObject(queue, .queue) }

@_cdecl("aios_queue_unref")
public func aios_queue_unref(_ queue: OpaquePointer?) -> Int32 { unrefObject(queue, .queue) }
