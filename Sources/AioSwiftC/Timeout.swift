// Timeouts: asyncio.timeout_at scopes and wait_for.
import AioSwift
import CAioSwift

extension Timeout: ForeignObject {}

/// A deadline from C: INFINITY means none; NaN is refused.
private func deadline(_ when: Double) throws -> Double? {
  guard !when.isNaN else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  return when == .infinity ? nil : when
}

/// A timeout scope, on its thread.
private func ownTimeout(_ p: OpaquePointer?) throws -> Timeout { try object(p, .timeout, as: Timeout.self) }

@_cdecl("aios_timeout_at")
public func aios_timeout_at(_ loop: OpaquePointer?, _ when: Double,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    try loop.checkUsable()
    try give(Timeout(when: try deadline(when), loop: loop), .timeout, out)
  }
}

@_cdecl("aios_timeout")
public func aios_timeout(_ loop: OpaquePointer?, _ delay: Double,
                         _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    try loop.checkUsable()
    try give(Timeout(when: try deadline(delay).map { loop.time() + $0 }, loop: loop), .timeout, out)
  }
}

@_cdecl("aios_timeout_enter")
public func aios_timeout_enter(_ timeout: OpaquePointer?, _ task: OpaquePointer?) -> Int32 {
  status { try ownTimeout(timeout).enter(try ownTask(task)) }
}

@_cdecl("aios_timeout_exit")
public func aios_timeout_exit(_ timeout: OpaquePointer?, _ status: Int32) -> Int32 {
  do {
    let timeout = try ownTimeout(timeout)
    guard status <= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let raised = status == 0 ? nil : makeError(code: status, message: nil)
    return try timeout.exit(raised).map(statusCode) ?? 0
  } catch {
    return statusCode(of: error)
  }
}

@_cdecl("aios_timeout_reschedule")
public func aios_timeout_reschedule(_ timeout: OpaquePointer?, _ when: Double) -> Int32 {
  status { try ownTimeout(timeout).reschedule(try deadline(when)) }
}

@_cdecl("aios_timeout_when")
public func aios_timeout_when(_ timeout: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> Int32 {
  status {
    guard let out else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    out.pointee = try ownTimeout(timeout).when ?? .infinity
  }
}

@_cdecl("aios_timeout_expired")
public func aios_timeout_expired(_ timeout: OpaquePointer?) -> Int32 {
  count { try ownTimeout(timeout).isExpired ? 1 : 0 }
}

@_cdecl("aios_timeout_ref")
public func aios_timeout_ref(_ timeout: OpaquePointer?) -> Int32 { refObject(timeout, .timeout) }

@_cdecl("aios_timeout_unref")
public func aios_timeout_unref(_ timeout: OpaquePointer?) -> Int32 { unrefObject(timeout, .timeout) }

@_cdecl("aios_wait_for")
public func aios_wait_for(_ future: OpaquePointer?, _ timeout: Double,
                          _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let future = try ownFuture(future)
    guard !timeout.isNaN else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    if future.isDone {
      // wait_for on a done future returns (or raises) at once: no task.
      let finished = try finishedLike(future)
      try give(finished, objectType(of: finished), out)
      return
    }
    let delay: Double? = timeout == .infinity ? nil : timeout
    let waiter = try future.loop.createTask { try await waitFor(future, timeout: delay) }
    try give(waiter, .task, out)
  }
}

/// A done future with `future`'s outcome but no result value (the value
/// stays in `future`): the loop's shared done future for a result.
private func finishedLike(_ future: AnyFuture) throws -> AnyFuture {
  do {
    try future.checkResult()
    return future.loop.doneFuture
  } catch let cancelled as CancelledError {
    let copy = RawFuture(loop: future.loop)
    copy.cancel(message: cancelled.message.isEmpty ? nil : cancelled.message)
    return copy
  } catch {
    let copy = RawFuture(loop: future.loop)
    try copy.setError(error)
    return copy
  }
}
