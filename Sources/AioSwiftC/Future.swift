// Futures and sleep (asyncio.Future, asyncio.sleep).
import AioSwift
import CAioSwift

/// The C layer's part of every loop C uses: calls into C with handles lent
/// for the call, and releases of the references the core holds.
final class CInterface: ForeignInterface {
  func callDone(_ function: ForeignDoneFunction, _ argument: UnsafeMutableRawPointer?, of future: AnyFuture) {
    let callback = unsafeBitCast(function, to: aios_done_fn.self)
    lend(future, objectType(of: future)) { callback($0, argument) }
  }

  func step(_ task: StepTask, awaited: AnyFuture?) -> Int32 {
    let step = unsafeBitCast(task.stepFunction, to: aios_step_fn.self)
    // The reference aios_task_await took for the future now done: the step
    // gets that handle back rather than a new one.
    let held = task.holdsAwaitedHandle ? awaited?.foreignHandle ?? 0 : 0
    task.holdsAwaitedHandle = false
    let run = { (taskHandle: OpaquePointer?) -> Int32 in
      guard let awaited else { return step(taskHandle, nil, task.argument) }
      if held != 0 { return step(taskHandle, pointer(held), task.argument) }
      return lend(awaited, objectType(of: awaited)) { step(taskHandle, $0, task.argument) }
    }
    let status = task.holdsOwnHandle ? run(pointer(task.foreignHandle)) : lend(task, .task, run)
    if held != 0 { _ = ObjectTable.release(held) }
    // One taken by this step is kept only while the task awaits.
    if task.holdsAwaitedHandle && status != Int32(AIOS_STEP_AWAIT),
       case .await(let future)? = task.loop.stepOutcome {
      task.releaseAwaitedHandle(of: future)
    }
    return status
  }

  func releaseHandle(_ handle: UInt64) { _ = ObjectTable.release(handle) }

  func drainDeferredReleases() { DeferredReleases.drain() }
}
let cInterface = CInterface()

@_cdecl("aios_future_new")
public func aios_future_new(_ loop: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try loop.checkUsable()
    try give(RawFuture(loop: loop), .future, out)
  }
}

@_cdecl("aios_future_set_result")
public func aios_future_set_result(_ future: OpaquePointer?, _ value: UnsafeMutableRawPointer?,
                                   _ destructor: aios_destructor_fn?) -> Int32 {
  status { try ownFuture(future).setCResult(value, destructor: destructor) }
}

@_cdecl("aios_future_set_error")
public func aios_future_set_error(_ future: OpaquePointer?, _ error: OpaquePointer?) -> Int32 {
  status {
    let future = try ownFuture(future)
    try withSwiftError(error) { try future.setError($0) }
  }
}

@_cdecl("aios_future_cancel")
public func aios_future_cancel(_ future: OpaquePointer?, _ message: UnsafePointer<CChar>?) -> Int32 {
  count { try ownFuture(future).cancel(message: string(message)) ? 1 : 0 }
}

@_cdecl("aios_future_done")
public func aios_future_done(_ future: OpaquePointer?) -> Int32 {
  count { try withOwnFuture(future) { $0.isDone ? 1 : 0 } }
}

@_cdecl("aios_future_cancelled")
public func aios_future_cancelled(_ future: OpaquePointer?) -> Int32 {
  count { try withOwnFuture(future) { $0.isCancelled ? 1 : 0 } }
}

@_cdecl("aios_future_result")
public func aios_future_result(_ future: OpaquePointer?,
                               _ value: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
  status {
    try withOwnFuture(future) { future in
      try future.checkResult()
      value?.pointee = future.cResult
    }
  }
}

@_cdecl("aios_future_take_result")
public func aios_future_take_result(_ future: OpaquePointer?,
                                    _ value: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                    _ destructor: UnsafeMutablePointer<aios_destructor_fn?>?) -> Int32 {
  status {
    let (taken, free) = try withOwnFuture(future) { try $0.takeCResult() }
    value?.pointee = taken
    destructor?.pointee = free
  }
}

@_cdecl("aios_future_error")
public func aios_future_error(_ future: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let future = try ownFuture(future)
    guard let out else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let error: (any Error)?
    do {
      error = try future.exception()
    } catch let cancelled as CancelledError {
      error = cancelled
    }
    out.pointee = nil
    if let error { try giveError(error, out) }
  }
}

@_cdecl("aios_future_add_done_callback")
public func aios_future_add_done_callback(_ future: OpaquePointer?, _ cb: aios_done_fn?,
                                          _ arg: UnsafeMutableRawPointer?,
                                          _ destructor: aios_destructor_fn?) -> Int32 {
  status {
    let future = try ownFuture(future)
    guard let cb else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try future.loop.checkUsable()
    future.addForeignDoneCallback(unsafeBitCast(cb, to: UnsafeRawPointer.self), arg, destructor: destructor,
                                  foreign: cInterface)
  }
}

@_cdecl("aios_future_remove_done_callback")
public func aios_future_remove_done_callback(_ future: OpaquePointer?, _ cb: aios_done_fn?,
                                             _ arg: UnsafeMutableRawPointer?) -> Int32 {
  count {
    let future = try ownFuture(future)
    guard let cb else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    return future.removeForeignDoneCallback(unsafeBitCast(cb, to: UnsafeRawPointer.self), arg)
  }
}

@_cdecl("aios_future_get_loop")
public func aios_future_get_loop(_ future: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try ownFuture(future).loop, .loop, out)
  }
}

@_cdecl("aios_future_ref")
public func aios_future_ref(_ future: OpaquePointer?) -> Int32 { refObject(future, .future, or: .task) }

@_cdecl("aios_future_unref")
public func aios_future_unref(_ future: OpaquePointer?) -> Int32 { unrefObject(future, .future, or: .task) }

@_cdecl("aios_sleep")
public func aios_sleep(_ loop: OpaquePointer?, _ delay: Double, _ value: UnsafeMutableRawPointer?,
                       _ destructor: aios_destructor_fn?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let future = try loop.sleepFuture(delay, value: value, destructor: destructor)
    do {
      try give(future, .future, out)
    } catch {
      future.disownCResult()  // the caller keeps `value` when the call fails
      _ = future.cancel()
      throw error
    }
  }
}
