// gather, wait, as_completed and shield.
import AioSwift
import CAioSwift

/// A C array of `count` futures.
private func futureList(_ futures: UnsafePointer<OpaquePointer?>?, _ count: Int) throws -> [AnyFuture] {
  guard count >= 0, count == 0 || futures != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  return try (0..<count).map { try ownFuture(futures![$0]) }
}

@_cdecl("aios_gather")
public func aios_gather(_ loop: OpaquePointer?, _ futures: UnsafePointer<OpaquePointer?>?, _ count: Int,
                        _ returnExceptions: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    let children = try futureList(futures, count)
    try give(try loop.gather(children, returnExceptions: returnExceptions != 0), .future, out)
  }
}

@_cdecl("aios_wait")
public func aios_wait(_ loop: OpaquePointer?, _ futures: UnsafePointer<OpaquePointer?>?, _ count: Int,
                      _ timeout: Double, _ returnWhen: Int32,
                      _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    guard let when = ReturnWhen(rawValue: returnWhen), !timeout.isNaN else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue)
    }
    let waiting = try loop.wait(try futureList(futures, count),
                                timeout: timeout == .infinity ? nil : timeout, returnWhen: when)
    try give(waiting, .future, out)
  }
}

@_cdecl("aios_shield")
public func aios_shield(_ future: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let inner = try ownFuture(future)
    let outer = try inner.loop.shield(inner)
    try give(outer, objectType(of: outer), out)
  }
}

extension AsCompleted: ForeignObject {}

@_cdecl("aios_as_completed_new")
public func aios_as_completed_new(_ loop: OpaquePointer?, _ futures: UnsafePointer<OpaquePointer?>?,
                                  _ count: Int, _ timeout: Double,
                                  _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    let list = try futureList(futures, count)
    // Indexes refer to the caller's array: a repeated future would shift them.
    guard Set(list.map(ObjectIdentifier.init)).count == list.count, !timeout.isNaN else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue)
    }
    let iterator = try loop.asCompleted(list, timeout: timeout == .infinity ? nil : timeout)
    try give(iterator, .asCompleted, out)
  }
}

@_cdecl("aios_as_completed_next")
public func aios_as_completed_next(_ iterator: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  do {
    guard let out else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let iterator = try object(iterator, .asCompleted, as: AsCompleted.self)
    out.pointee = nil
    guard let next = try iterator.nextOperation() else { return 1 }
    try give(next, .future, out)
    return 0
  } catch {
    return statusCode(of: error)
  }
}

@_cdecl("aios_as_completed_ref")
public func aios_as_completed_ref(_ iterator: OpaquePointer?) -> Int32 { refObject(iterator, .asCompleted) }

@_cdecl("aios_as_completed_unref")
public func aios_as_completed_unref(_ iterator: OpaquePointer?) -> Int32 { unrefObject(iterator, .asCompleted) }
