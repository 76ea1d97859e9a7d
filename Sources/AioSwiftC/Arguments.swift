// Turning C arguments into core objects: every pointer is checked (NULL,
// freed, wrong type) and every loop-bound object its thread.
import AioSwift
import CAioSwift

/// Runs `body` with the object a C pointer names, if it is alive, of `type`
/// (or `other`) and the calling thread's (the table knows each object's
/// thread). The object is borrowed: C's reference keeps it alive for the
/// call, so no Swift reference is taken on these hot paths.
@inline(__always)
func withObject<T: AnyObject, R>(_ p: OpaquePointer?, _ type: ObjectType, or other: ObjectType? = nil,
                                 as _: T.Type, _ body: (T) throws -> R) throws -> R {
  let address = try ObjectTable.ownAddress(handleValue(p), type, or: other)
  return try Unmanaged<T>.fromOpaque(address)._withUnsafeGuaranteedRef(body)
}

/// withObject for the calls any thread may make: the object is only read.
@inline(__always)
func withObjectOnAnyThread<T: AnyObject, R>(_ p: OpaquePointer?, _ type: ObjectType, as _: T.Type,
                                            _ body: (T) throws -> R) throws -> R {
  guard let address = ObjectTable.address(handleValue(p), type) else { throw badHandle(p) }
  return try Unmanaged<T>.fromOpaque(address)._withUnsafeGuaranteedRef(body)
}

/// withObject for a future or a task.
@inline(__always)
func withOwnFuture<R>(_ p: OpaquePointer?, _ body: (AnyFuture) throws -> R) throws -> R {
  try withObject(p, .future, or: .task, as: AnyFuture.self, body)
}

/// The object a C pointer names, if it is alive, of `type` (or `other`)
/// and the calling thread's.
@inline(__always)
func object<T: AnyObject>(_ p: OpaquePointer?, _ type: ObjectType, or other: ObjectType? = nil,
                          as _: T.Type) throws -> T {
  let address = try ObjectTable.ownAddress(handleValue(p), type, or: other)
  return Unmanaged<T>.fromOpaque(address).takeUnretainedValue()
}

/// A loop, on its own thread.
@inline(__always)
func ownLoop(_ p: OpaquePointer?) throws -> Loop { try object(p, .loop, as: Loop.self) }

/// A future or a task, on its loop's thread.
@inline(__always)
func ownFuture(_ p: OpaquePointer?) throws -> AnyFuture {
  try object(p, .future, or: .task, as: AnyFuture.self)
}

/// A task, on its loop's thread.
@inline(__always)
func ownTask(_ p: OpaquePointer?) throws -> TaskBase { try object(p, .task, as: TaskBase.self) }

/// Runs `body` with a task driven by a C step function, inside its step.
@inline(__always)
func withSteppingTask<R>(_ p: OpaquePointer?, _ body: (StepTask) throws -> R) throws -> R {
  try withObject(p, .task, as: TaskBase.self) { task in
    guard task.isStepTask, unsafeDowncast(task, to: StepTask.self).isStepping else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "not called from the task's own step")
    }
    return try body(unsafeDowncast(task, to: StepTask.self))
  }
}

@inline(__always)
func ownHandle(_ p: OpaquePointer?) throws -> Handle { try object(p, .handle, as: Handle.self) }


@inline(__always)
func ownRunner(_ p: OpaquePointer?) throws -> Runner { try object(p, .runner, as: Runner.self) }

/// The object type C sees for a future: a task is a task.
@inline(__always)
func objectType(of future: AnyFuture) -> ObjectType {
  future.isTask ? .task : .future
}

/// A C string argument as a Swift string (nil stays nil).
@inline(__always)
func string(_ p: UnsafePointer<CChar>?) -> String? {
  p.map { String(cString: $0) }
}

/// ref/unref for any object type, from any thread: unref accepts NULL.
func refObject(_ p: OpaquePointer?, _ type: ObjectType, or other: ObjectType? = nil) -> Int32 {
  guard p != nil else { return AIOS_EINVAL.rawValue }
  guard ObjectTable.address(handleValue(p), type, or: other) != nil,
        ObjectTable.retain(handleValue(p)) else { return AIOS_EBADHANDLE.rawValue }
  return 0
}

func unrefObject(_ p: OpaquePointer?, _ type: ObjectType, or other: ObjectType? = nil) -> Int32 {
  guard p != nil else { return 0 }
  guard ObjectTable.address(handleValue(p), type, or: other) != nil,
        ObjectTable.release(handleValue(p)) else {
    return AIOS_EBADHANDLE.rawValue
  }
  return 0
}
