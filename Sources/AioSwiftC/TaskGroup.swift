// asyncio.TaskGroup for tasks driven by C step functions.
import AioSwift
import CAioSwift

extension TaskGroup: ForeignObject {}

private func ownGroup(_ p: OpaquePointer?) throws -> TaskGroup {
  let group = try object(p, .taskGroup, as: TaskGroup.self)
  try checkThread(group.loop)
  return group
}

@_cdecl("aios_task_group_new")
public func aios_task_group_new(_ loop: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    try loop.checkUsable()
    try give(TaskGroup(loop: loop), .taskGroup, out)
  }
}

@_cdecl("aios_task_group_enter")
public func aios_task_group_enter(_ group: OpaquePointer?, _ parent: OpaquePointer?) -> Int32 {
  status { try ownGroup(group).enter(try ownTask(parent)) }
}

@_cdecl("aios_task_group_create_task")
public func aios_task_group_create_task(_ group: OpaquePointer?, _ step: aios_step_fn?,
                                        _ arg: UnsafeMutableRawPointer?,
                                        _ options: UnsafePointer<aios_task_options_t>?,
                                        _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let group = try ownGroup(group)
    guard let step else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try group.checkCanCreate()
    let options = try taskOptions(options)
    foreignHooksInstalled
    let task = try group.loop.createStepTask(
      function: unsafeBitCast(step, to: UnsafeRawPointer.self), argument: arg,
      destructor: options.arg_destructor, name: string(options.name), eager: options.eager != 0)
    group.add(task)
    try give(task, .task, out)
  }
}

@_cdecl("aios_task_group_exit")
public func aios_task_group_exit(_ group: OpaquePointer?, _ status: Int32,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let group = try ownGroup(group)
    guard status <= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let raised = status == 0 ? nil : makeError(code: status, message: nil)
    try give(try group.exitOperation(raised), .future, out)
  }
}

@_cdecl("aios_task_group_ref")
public func aios_task_group_ref(_ group: OpaquePointer?) -> Int32 { refObject(group, .taskGroup) }

@_cdecl("aios_task_group_unref")
public func aios_task_group_unref(_ group: OpaquePointer?) -> Int32 { unrefObject(group, .taskGroup) }

@_cdecl("aios_error_group_size")
public func aios_error_group_size(_ error: OpaquePointer?) -> Int32 {
  count { (try lookupError(error).error as? TaskGroupError)?.errors.count ?? 0 }
}

@_cdecl("aios_error_group_get")
public func aios_error_group_get(_ error: OpaquePointer?, _ index: Int,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    guard let group = try lookupError(error).error as? TaskGroupError,
          index >= 0, index < group.errors.count else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(ErrorObject(group.errors[index]), .error, out)
  }
}
