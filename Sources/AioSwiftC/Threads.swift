// asyncio.to_thread for C functions.
import AioSwift
import CAioSwift

@_cdecl("aios_to_thread")
public func aios_to_thread(_ loop: OpaquePointer?, _ fn: aios_thread_fn?, _ arg: UnsafeMutableRawPointer?,
                           _ destructor: aios_destructor_fn?,
                           _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    guard let fn else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    // `arg` crosses to a worker thread: the caller shares it (see the header).
    let future = try loop.toThread({
      var result: UnsafeMutableRawPointer?
      let status = fn(arg, &result)
      return (status, result)
    }, destructor: destructor)
    try give(future, .future, out)
  }
}

@_cdecl("aios_set_thread_pool_size")
public func aios_set_thread_pool_size(_ size: UInt32) -> Int32 {
  status { try setThreadPoolSize(Int(size)) }
}
