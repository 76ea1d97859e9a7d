// Tasks driven by C step functions (asyncio.Task; see aios_step_fn).
import AioSwift
import CAioSwift
import Glibc

@_cdecl("aios_task_new")
public func aios_task_new(_ loop: OpaquePointer?, _ step: aios_step_fn?, _ arg: UnsafeMutableRawPointer?,
                          _ options: UnsafePointer<aios_task_options_t>?,
                          _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let target = try ownLoop(loop)
    guard let step else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let handle = try createTask(target, loopHandle: loop, step, arg, options, forCaller: out != nil)
    out?.pointee = pointer(handle)
  }
}

@_cdecl("aios_task_create")
public func aios_task_create(_ loop: OpaquePointer?, _ step: aios_step_fn?, _ arg: UnsafeMutableRawPointer?,
                             _ options: UnsafePointer<aios_task_options_t>?,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard let step else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let (_, handle) = try createStepTask(loop, step, arg, try taskOptions(options), forCaller: out != nil)
    out?.pointee = pointer(handle)
  }
}

/// asyncio.Task(...): a task driven by a C step function, whatever the
/// loop's task factory. Without `forCaller` only the loop holds it (a
/// fire-and-forget task) until it is done.
func createStepTask(_ loop: Loop, _ step: aios_step_fn, _ arg: UnsafeMutableRawPointer?,
                    _ options: aios_task_options_t, forCaller: Bool) throws -> (StepTask, UInt64) {
  var handle: UInt64 = 0
  let task = try loop.createStepTask(
    function: unsafeBitCast(step, to: UnsafeRawPointer.self), argument: arg,
    destructor: options.arg_destructor, name: string(options.name), eager: options.eager != 0,
    foreign: cInterface,
    prepare: { task in
      if let context = options.context { task.setContext(context, destructor: options.context_destructor) }
      handle = try giveOwnHandle(task, forCaller: forCaller)
    })
  return (task, handle)
}

/// loop.create_task: the loop's task factory makes the task if it has one,
/// else createStepTask. Returns the task's handle, with one reference for
/// the caller when `forCaller`.
func createTask(_ loop: Loop, loopHandle: OpaquePointer?, _ step: aios_step_fn,
                _ arg: UnsafeMutableRawPointer?, _ options: UnsafePointer<aios_task_options_t>?,
                forCaller: Bool) throws -> UInt64 {
  guard let (factory, factoryArg) = loop.taskFactory.map({ ($0.function, $0.argument) }) else {
    return try createStepTask(loop, step, arg, try taskOptions(options), forCaller: forCaller).1
  }
  let fn = unsafeBitCast(factory, to: aios_task_factory_fn.self)
  var made: OpaquePointer?
  // The factory is user code: the loop is held across it.
  let status = withExtendedLifetime(loop) { fn(loopHandle, step, arg, options, factoryArg, &made) }
  if status != 0 {
    if made != nil { _ = ObjectTable.release(handleValue(made)) }
    throw status < 0 ? makeError(code: status, message: nil)
      : RuntimeError(code: AIOS_EINVAL.rawValue, "the task factory returned \(status)")
  }
  guard made != nil else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "the task factory made no task")
  }
  guard let task = try? object(made, .task, as: TaskBase.self), task.loop === loop else {
    _ = ObjectTable.release(handleValue(made))
    throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue, "the task factory made a task of another loop")
  }
  if !forCaller { _ = ObjectTable.release(handleValue(made)) }
  return handleValue(made)
}

@_cdecl("aios_loop_set_task_factory")
public func aios_loop_set_task_factory(_ loop: OpaquePointer?, _ factory: aios_task_factory_fn?,
                                       _ arg: UnsafeMutableRawPointer?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    loop.taskFactory = factory.map { (function: unsafeBitCast($0, to: UnsafeRawPointer.self), argument: arg) }
  }
}

@_cdecl("aios_loop_get_task_factory")
public func aios_loop_get_task_factory(_ loop: OpaquePointer?,
                                       _ factory: UnsafeMutablePointer<aios_task_factory_fn?>?,
                                       _ arg: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
  status {
    guard let factory else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let current = try ownLoop(loop).taskFactory
    factory.pointee = current.map { unsafeBitCast($0.function, to: aios_task_factory_fn.self) }
    arg?.pointee = current?.argument
  }
}

@_cdecl("aios_task_get_context")
public func aios_task_get_context(_ task: OpaquePointer?) -> UnsafeMutableRawPointer? {
  (try? object(task, .task, as: TaskBase.self))?.context
}

/// A new task's handle, holding the reference the task keeps while it is
/// pending (see StepTask.holdsOwnHandle) and, when `forCaller`, one for C.
func giveOwnHandle(_ task: StepTask, forCaller: Bool) throws -> UInt64 {
  guard let handle = ObjectTable.export(task, .task) else {
    throw tableFull()
  }
  if forCaller { _ = ObjectTable.retain(handle) }
  task.holdsOwnHandle = true
  return handle
}

/// Reads an options struct of any size up to ours (it carries its own size
/// so it can grow); missing fields are zero.
func taskOptions(_ options: UnsafePointer<aios_task_options_t>?) throws -> aios_task_options_t {
  var result = aios_task_options_t()
  guard let options else { return result }
  let size = options.pointee.size
  guard size >= MemoryLayout<Int>.size else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  withUnsafeMutableBytes(of: &result) { target in
    let raw = UnsafeRawPointer(options)
    target.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(size, target.count)))
  }
  return result
}

@_cdecl("aios_task_as_future")
public func aios_task_as_future(_ task: OpaquePointer?) -> OpaquePointer? { task }

@_cdecl("aios_future_as_task")
public func aios_future_as_task(_ future: OpaquePointer?) -> OpaquePointer? {
  ObjectTable.address(handleValue(future), .task) != nil ? future : nil
}

@_cdecl("aios_task_get_loop")
public func aios_task_get_loop(_ task: OpaquePointer?) -> OpaquePointer? {
  guard let task = try? object(task, .task, as: TaskBase.self),
        let handle = borrowedHandle(of: task.loop) else { return nil }
  return pointer(handle)
}

@_cdecl("aios_task_await_owned")
public func aios_task_await_owned(_ task: OpaquePointer?, _ future: OpaquePointer?) -> Int32 {
  let status = awaitFuture(task, future, retaining: false)
  // Taken over even when refused: the caller's reference is gone.
  if status < 0, future != nil { _ = ObjectTable.release(handleValue(future)) }
  return status
}

@_cdecl("aios_task_await")
public func aios_task_await(_ task: OpaquePointer?, _ future: OpaquePointer?) -> Int32 {
  awaitFuture(task, future, retaining: true)
}

/// aios_task_await: the task keeps a C reference through `future` for its
/// next step, its own (`retaining`) or the caller's.
private func awaitFuture(_ task: OpaquePointer?, _ future: OpaquePointer?, retaining: Bool) -> Int32 {
  do {
    return try withSteppingTask(task) { task in
      var awaited: AnyFuture?
      if future != nil {
        awaited = try withOwnFuture(future) { target in
          guard target.loop === task.loop else { throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue) }
          guard target !== task else {
            throw RuntimeError(code: AIOS_EINVAL.rawValue, "a task cannot await itself")
          }
          return target
        }
      }
      try checkNoOutcome(task)
      // Keep a C reference for the next step, which gets this handle back.
      task.holdsAwaitedHandle = awaited != nil && (!retaining || ObjectTable.retain(handleValue(future)))
      task.loop.stepOutcome = .await(awaited)
      return Int32(AIOS_STEP_AWAIT)
    }
  } catch {
    return statusCode(of: error)
  }
}

@_cdecl("aios_task_return")
public func aios_task_return(_ task: OpaquePointer?, _ value: UnsafeMutableRawPointer?,
                             _ destructor: aios_destructor_fn?) -> Int32 {
  do {
    return try withSteppingTask(task) { task in
      try checkNoOutcome(task)
      task.loop.stepOutcome = .returned(value, destructor)
      return Int32(AIOS_STEP_DONE)
    }
  } catch {
    return statusCode(of: error)
  }
}

@_cdecl("aios_task_fail")
public func aios_task_fail(_ task: OpaquePointer?, _ error: OpaquePointer?) -> Int32 {
  do {
    return try withSteppingTask(task) { task in
      let error = try withSwiftError(error) { $0 }
      try checkNoOutcome(task)
      task.loop.stepOutcome = .failed(error)
      return Int32(AIOS_STEP_DONE)
    }
  } catch {
    return statusCode(of: error)
  }
}

/// A step reports one outcome.
private func checkNoOutcome(_ task: StepTask) throws {
  if case .some = task.loop.stepOutcome {
    throw InvalidStateError("the step already awaited, returned or failed")
  }
}

@_cdecl("aios_task_cancel")
public func aios_task_cancel(_ task: OpaquePointer?, _ message: UnsafePointer<CChar>?) -> Int32 {
  count { try ownTask(task).cancel(message: string(message)) ? 1 : 0 }
}

@_cdecl("aios_task_cancelling")
public func aios_task_cancelling(_ task: OpaquePointer?) -> Int32 { count { try ownTask(task).cancelling } }

@_cdecl("aios_task_uncancel")
public func aios_task_uncancel(_ task: OpaquePointer?) -> Int32 { count { try ownTask(task).uncancel() } }

@_cdecl("aios_task_get_name")
public func aios_task_get_name(_ task: OpaquePointer?) -> UnsafePointer<CChar>? {
  (try? ownTask(task))?.nameCString
}

@_cdecl("aios_task_set_name")
public func aios_task_set_name(_ task: OpaquePointer?, _ name: UnsafePointer<CChar>?) -> Int32 {
  status {
    let task = try ownTask(task)
    guard let name else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    task.name = String(cString: name)
  }
}

@_cdecl("aios_current_task")
public func aios_current_task(_ loop: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard let out else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    out.pointee = nil
    if let task = loop.currentTask { try give(task, .task, out) }
  }
}

@_cdecl("aios_all_tasks")
public func aios_all_tasks(_ loop: OpaquePointer?, _ tasks: UnsafeMutablePointer<OpaquePointer?>?,
                           _ capacity: UInt) -> Int32 {
  count {
    let loop = try ownLoop(loop)
    guard capacity == 0 || tasks != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let all = loop.allTasks()
    for (index, task) in all.prefix(Int(clamping: capacity)).enumerated() {
      do {
        try give(task, .task, tasks! + index)
      } catch {
        // All or nothing: the references already given are taken back.
        for given in 0..<index { _ = ObjectTable.release(handleValue(tasks![given])) }
        throw error
      }
    }
    return all.count
  }
}

@_cdecl("aios_task_ref")
public func aios_task_ref(_ task: OpaquePointer?) -> Int32 { refObject(task, .task) }

@_cdecl("aios_task_unref")
public func aios_task_unref(_ task: OpaquePointer?) -> Int32 { unrefObject(task, .task) }
