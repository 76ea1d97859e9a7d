// The event loop and handles (asyncio's BaseEventLoop, Handle, TimerHandle).
import AioSwift
import CAioSwift

@_cdecl("aios_loop_new")
public func aios_loop_new(_ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let loop = try Loop()
    loop.closesWithLastForeignReference = true
    try give(loop, .loop, out)
  }
}

/// Lends C a handle to a future, task or handle that may be absent.
private func lendOptional<R>(_ future: AnyFuture?, _ body: (OpaquePointer?) -> R) -> R {
  guard let future else { return body(nil) }
  return lend(future, objectType(of: future), body)
}

private func lendOptional<R>(_ handle: Handle?, _ body: (OpaquePointer?) -> R) -> R {
  guard let handle else { return body(nil) }
  return lend(handle, .handle, body)
}

/// A handle to `loop` that C may borrow: its live one, or else a new one
/// the loop holds until it closes (a runner's loop, which C never named).
func borrowedHandle(of loop: Loop) -> UInt64? {
  let existing = loop.foreignHandle
  if existing != 0, ObjectTable.address(existing, .loop) == Unmanaged.passUnretained(loop).toOpaque() {
    return existing
  }
  guard !loop.isClosed, let handle = ObjectTable.export(loop, .loop) else { return nil }
  loop.atClose(loop) { _ = ObjectTable.release(handle) }
  return handle
}

@_cdecl("aios_loop_ref")
public func aios_loop_ref(_ loop: OpaquePointer?) -> Int32 { refObject(loop, .loop) }

@_cdecl("aios_loop_unref")
public func aios_loop_unref(_ loop: OpaquePointer?) -> Int32 {
  // The handles of call_soon_threadsafe hold C references to their loop
  // (LoopKeeper) until they have run. When an unref leaves only those, the
  // loop is unreachable: it closes, which drops the handles. On the loop's
  // thread that happens here; another thread leaves it to the loop's.
  let handle = handleValue(loop)
  guard let address = ObjectTable.address(handle, .loop) else { return unrefObject(loop, .loop) }
  // Read while the caller's reference still holds the loop.
  let (owner, keepers, onOwnThread) = Unmanaged<Loop>.fromOpaque(address)._withUnsafeGuaranteedRef {
    ($0.ownerToken, UInt32(clamping: $0.threadsafeKeepers.load(ordering: .acquiring)), $0.isOwnerThread)
  }
  if onOwnThread { closeIfOnlyKeepersLeft(handle, afterOneMore: true) }
  let status = unrefObject(loop, .loop)
  if status == 0, keepers > 0, !onOwnThread, ObjectTable.referenceCount(handle) <= keepers {
    DeferredReleases.addLoopCheck(handle, owner: owner)
  }
  return status
}

/// Closes the loop of `handle` if nothing but call_soon_threadsafe handles
/// (and, with `afterOneMore`, the caller's reference about to go) holds it.
/// On the loop's own thread.
func closeIfOnlyKeepersLeft(_ handle: UInt64, afterOneMore: Bool = false) {
  guard let address = ObjectTable.address(handle, .loop) else { return }
  let target = Unmanaged<Loop>.fromOpaque(address).takeUnretainedValue()
  guard target.isOwnerThread, !target.isClosed else { return }
  let keepers = UInt32(clamping: target.threadsafeKeepers.load(ordering: .acquiring))
  if keepers > 0, ObjectTable.referenceCount(handle) <= keepers + (afterOneMore ? 1 : 0) {
    target.closeWhenUnreachable()
  }
}

@_cdecl("aios_loop_run_forever")
public func aios_loop_run_forever(_ loop: OpaquePointer?) -> Int32 {
  status { try ownLoop(loop).runForever() }
}

@_cdecl("aios_loop_run_until_complete")
public func aios_loop_run_until_complete(_ loop: OpaquePointer?, _ future: OpaquePointer?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    let future = try ownFuture(future)
    try loop.runUntilComplete(future)
  }
}

@_cdecl("aios_loop_stop")
public func aios_loop_stop(_ loop: OpaquePointer?) -> Int32 { status { try ownLoop(loop).stop() } }

@_cdecl("aios_loop_close")
public func aios_loop_close(_ loop: OpaquePointer?) -> Int32 { status { try ownLoop(loop).close() } }

@_cdecl("aios_loop_is_running")
public func aios_loop_is_running(_ loop: OpaquePointer?) -> Int32 {
  count { try withObjectOnAnyThread(loop, .loop, as: Loop.self) { $0.isRunning ? 1 : 0 } }
}

@_cdecl("aios_loop_is_closed")
public func aios_loop_is_closed(_ loop: OpaquePointer?) -> Int32 {
  count { try withObjectOnAnyThread(loop, .loop, as: Loop.self) { $0.isClosed ? 1 : 0 } }
}

@_cdecl("aios_loop_time")
public func aios_loop_time(_ loop: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> Int32 {
  status {
    guard let out else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    out.pointee = try ownLoop(loop).time()
  }
}

@_cdecl("aios_loop_call_soon")
public func aios_loop_call_soon(_ loop: OpaquePointer?, _ cb: aios_callback_fn?,
                                _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard let cb else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    if out == nil && destructor == nil {
      try loop.callSoonUncancellable(c: cb, arg: arg)
    } else {
      try giveHandle(try loop.callSoon(c: cb, arg: arg, destructor: destructor), out)
    }
  }
}

@_cdecl("aios_loop_call_soon_threadsafe")
public func aios_loop_call_soon_threadsafe(_ loop: OpaquePointer?, _ cb: aios_callback_fn?,
                                           _ arg: UnsafeMutableRawPointer?,
                                           _ destructor: aios_destructor_fn?,
                                           _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  // Any thread: the loop is only borrowed, and what is made here is handed
  // over whole to the loop's thread.
  status {
    try withObjectOnAnyThread(loop, .loop, as: Loop.self) { target in
      guard let cb else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      guard !target.isClosed else { throw RuntimeError(code: AIOS_ECLOSED.rawValue) }
      if target.isOwnerThread {
        let handle = try target.callSoonThreadsafeOnOwnThread(c: cb, arg: arg, destructor: destructor)
        return try giveHandle(handle, out)
      }
      if out == nil && destructor == nil { return try target.callSoonThreadsafe(c: cb, arg: arg) }
      guard ObjectTable.retain(handleValue(loop)) else { throw badHandle(loop) }
      // Every reference this thread counts is taken before the handle is
      // queued, where the loop's thread takes over (enqueueThreadsafe).
      let handle = Unmanaged.passRetained(
        target.threadsafeHandle(c: cb, arg: arg, destructor: destructor,
                                keeper: LoopKeeper(handleValue(loop), target)))
      var handleValue: UInt64 = 0
      do {
        if out != nil {
          guard let exported = ObjectTable.export(handle.takeUnretainedValue(), .handle,
                                                  owner: target.ownerToken) else { throw tableFull() }
          handleValue = exported
        }
        try target.enqueueThreadsafe(handle)
      } catch {
        // Never queued: nothing of it reached the loop's thread, and the
        // caller keeps `arg`.
        handle.takeUnretainedValue().disownArgument()
        handle.release()
        if handleValue != 0 { _ = ObjectTable.release(handleValue, onThisThread: true) }
        throw error
      }
      out?.pointee = pointer(handleValue)
    }
  }
}

/// Holds a loop by a C reference, for a handle made on another thread; the
/// loop counts its keepers (see aios_loop_unref).
private final class LoopKeeper {
  let loopHandle: UInt64
  private let loop: Unmanaged<Loop>
  init(_ loopHandle: UInt64, _ loop: Loop) {
    self.loopHandle = loopHandle
    self.loop = Unmanaged.passUnretained(loop)
    loop.threadsafeKeepers.add(1, ordering: .relaxed)
  }
  deinit {
    // Uncounted first: the release may free the loop. A keeper goes on the
    // loop's thread (its handle ran, was dropped there, or the loop closed).
    _ = loop._withUnsafeGuaranteedRef { $0.threadsafeKeepers.subtract(1, ordering: .releasing) }
    _ = ObjectTable.release(loopHandle)
  }
}

@_cdecl("aios_loop_call_later")
public func aios_loop_call_later(_ loop: OpaquePointer?, _ delay: Double, _ cb: aios_callback_fn?,
                                 _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    try giveHandle(try callAt(loop, loop.time() + delay, cb, arg, destructor), out)
  }
}

@_cdecl("aios_loop_call_at")
public func aios_loop_call_at(_ loop: OpaquePointer?, _ when: Double, _ cb: aios_callback_fn?,
                              _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?,
                              _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status { try giveHandle(try callAt(try ownLoop(loop), when, cb, arg, destructor), out) }
}

private func callAt(_ loop: Loop, _ when: Double, _ cb: aios_callback_fn?,
                    _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?) throws -> Handle {
  guard let cb, !when.isNaN else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  return try loop.callAt(when, c: cb, arg: arg, destructor: destructor)
}

/// Hands out the handle of a call just scheduled, if `out` asks for it.
private func giveHandle(_ handle: Handle, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
  guard out != nil else { return }
  do {
    try give(handle, .handle, out)
  } catch {
    // The caller gets an error: the callback must never run, and the
    // caller keeps its argument.
    handle.disownArgument()
    handle.cancel()
    throw error
  }
}

@_cdecl("aios_get_running_loop")
public func aios_get_running_loop(_ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try getRunningLoop(), .loop, out)
  }
}

@_cdecl("aios_loop_set_exception_handler")
public func aios_loop_set_exception_handler(_ loop: OpaquePointer?,
                                            _ handler: aios_exception_handler_fn?,
                                            _ arg: UnsafeMutableRawPointer?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard let handler else {
      loop.exceptionHandler = nil
      return
    }
    loop.exceptionHandler = { loop, context in
      lend(loop, .loop) { loopHandle in
        let error = context.error.flatMap(exportError)
        defer { if let error { _ = ObjectTable.release(error) } }
        lendOptional(context.future) { future in
          lendOptional(context.handle) { handle in
            context.message.withCString { message in
              var c = aios_exception_context_t()
              c.size = MemoryLayout<aios_exception_context_t>.size
              c.message = message
              c.error = error.flatMap(pointer)
              c.future = future
              c.task = context.future?.isTask == true ? future : nil
              c.handle = handle
              handler(loopHandle, &c, arg)
            }
          }
        }
      }
    }
  }
}

@_cdecl("aios_loop_call_exception_handler")
public func aios_loop_call_exception_handler(_ loop: OpaquePointer?, _ message: UnsafePointer<CChar>?,
                                             _ error: OpaquePointer?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    let error = try error.map { try withSwiftError($0) { $0 } }
    loop.callExceptionHandler(ExceptionContext(message: string(message) ?? "", error: error))
  }
}

@_cdecl("aios_loop_set_debug")
public func aios_loop_set_debug(_ loop: OpaquePointer?, _ enabled: Int32) -> Int32 {
  status { try ownLoop(loop).debug = enabled != 0 }
}

@_cdecl("aios_loop_get_debug")
public func aios_loop_get_debug(_ loop: OpaquePointer?) -> Int32 {
  count { try ownLoop(loop).debug ? 1 : 0 }
}

@_cdecl("aios_loop_set_iteration_callback")
public func aios_loop_set_iteration_callback(_ loop: OpaquePointer?, _ callback: aios_iteration_fn?,
                                             _ arg: UnsafeMutableRawPointer?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    try loop.checkUsable()
    loop.iterationCallback = callback.map { ($0, arg) }
  }
}

@_cdecl("aios_loop_set_slow_callback_duration")
public func aios_loop_set_slow_callback_duration(_ loop: OpaquePointer?, _ seconds: Double) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard seconds >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    loop.slowCallbackDuration = seconds
  }
}

// MARK: Handles

@_cdecl("aios_handle_cancel")
public func aios_handle_cancel(_ handle: OpaquePointer?) -> Int32 { status { try ownHandle(handle).cancel() } }

@_cdecl("aios_handle_cancelled")
public func aios_handle_cancelled(_ handle: OpaquePointer?) -> Int32 {
  count { try ownHandle(handle).cancelled ? 1 : 0 }
}

@_cdecl("aios_handle_when")
public func aios_handle_when(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> Int32 {
  status {
    guard let out, let timer = try ownHandle(handle) as? TimerHandle else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue)
    }
    out.pointee = timer.when
  }
}

@_cdecl("aios_handle_ref")
public func aios_handle_ref(_ handle: OpaquePointer?) -> Int32 { refObject(handle, .handle) }

@_cdecl("aios_handle_unref")
public func aios_handle_unref(_ handle: OpaquePointer?) -> Int32 { unrefObject(handle, .handle) }
