// asyncio.TaskGroup for tasks driven by C step functions.
import AioSwift
import CAioSwift

extension AioTaskGroup: ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { Unmanaged.passUnretained(loop).toOpaque() }
}

private func ownGroup(_ p: OpaquePointer?) throws -> AioTaskGroup { try object(p, .taskGroup, as: AioTaskGroup.self) }

@_cdecl("aios_task_group_new")
public func aios_task_group_new(_ loop: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let loop = try ownLoop(loop)
    try loop.checkUsable()
    try give(AioTaskGroup(loop: loop), .taskGroup, out)
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
    // loop.create_task, as TaskGroup.create_task calls it: through the
    // loop's task factory. The group holds what the factory made.
    let loop = group.loop
    guard let loopHandle = borrowedHandle(of: loop) else { throw RuntimeError(code: AIOS_ECLOSED.rawValue) }
    let handle = try withExtendedLifetime(group) {
      try createTask(loop, loopHandle: pointer(loopHandle), step, arg, options, forCaller: true)
    }
    guard let task = try? object(pointer(handle), .task, as: TaskBase.self) else {
      throw RuntimeError(code: AIOS_EBADHANDLE.rawValue)
    }
    group.add(task)
    if let out { out.pointee = pointer(handle) } else { _ = ObjectTable.release(handle) }
  }
}

@_cdecl("aios_task_group_exit")
public func aios_task_group_exit(_ group: OpaquePointer?, _ error: OpaquePointer?,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  operationCall(out) {
    let group = try ownGroup(group)
    // The body's own error, as __aexit__ gets it: its message, user data
    // and, for a group error, its members go on with it.
    let raised = error == nil ? nil : try withSwiftError(error) { $0 }
    try give(try group.exitOperation(raised), .future, out)
  }
}

@_cdecl("aios_task_group_ref")
public func aios_task_group_ref(_ group: OpaquePointer?) -> Int32 { refObject(group, .taskGroup) }

@_cdecl("aios_task_group_unref")
public func aios_task_group_unref(_ group: OpaquePointer?) -> Int32 { unrefObject(group, .taskGroup) }

@_cdecl("aios_error_group_size")
public func aios_error_group_size(_ error: OpaquePointer?) -> Int32 {
  guard let size = ObjectTable.withError(handleValue(error), { $0.children.count }) else {
    return statusCode(of: badHandle(error))
  }
  return Int32(clamping: size)
}

@_cdecl("aios_error_group_get")
public func aios_error_group_get(_ error: OpaquePointer?, _ index: Int,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  guard let out else { return AIOS_EINVAL.rawValue }
  guard let child = ObjectTable.withError(handleValue(error), { group in
    index >= 0 && index < group.children.count ? group.children[index] : 0
  }) else { return statusCode(of: badHandle(error)) }
  guard child != 0, ObjectTable.retain(child) else { return AIOS_EINVAL.rawValue }
  out.pointee = pointer(child)
  return 0
}
