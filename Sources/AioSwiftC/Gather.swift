// gather and shield.
import AioSwift
import CAioSwift

@_cdecl("aios_gather")
public func aios_gather(_ loop: OpaquePointer?, _ futures: UnsafePointer<OpaquePointer?>?, _ count: Int,
                        _ returnExceptions: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    guard count >= 0, count == 0 || futures != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let children = try (0..<count).map { try ownFuture(futures![$0]) }
    try give(try loop.gather(children, returnExceptions: returnExceptions != 0), .future, out)
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
