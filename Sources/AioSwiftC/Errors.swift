// Version, status codes, error objects and live-object counts.
import AioSwift
import CAioSwift
import Glibc

@_cdecl("aios_version")
public func aios_version() -> UInt32 {
  UInt32(AIOS_VERSION_MAJOR << 16 | AIOS_VERSION_MINOR << 8 | AIOS_VERSION_PATCH)
}

private let versionString: UnsafeMutablePointer<CChar> =
  strdup("\(AIOS_VERSION_MAJOR).\(AIOS_VERSION_MINOR).\(AIOS_VERSION_PATCH)")

@_cdecl("aios_version_string")
public func aios_version_string() -> UnsafePointer<CChar> { UnsafePointer(versionString) }

@_cdecl("aios_strerror")
public func aios_strerror(_ code: Int32) -> UnsafePointer<CChar> { aiosi_status_message(code) }

@_cdecl("aios_err_name")
public func aios_err_name(_ code: Int32) -> UnsafePointer<CChar> { aiosi_status_name(code) }

@_cdecl("aios_error_new")
public func aios_error_new(_ code: Int32, _ message: UnsafePointer<CChar>?,
                           _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil, code < 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(ErrorObject(code: code, message: string(message) ?? errorMessage(code)), .error, out)
  }
}

@_cdecl("aios_error_new_user")
public func aios_error_new_user(_ message: UnsafePointer<CChar>?, _ data: UnsafeMutableRawPointer?,
                                _ destructor: aios_destructor_fn?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let object = ErrorObject(code: AIOS_EUSER.rawValue,
                             message: string(message) ?? errorMessage(AIOS_EUSER.rawValue),
                             userData: data, userDestructor: destructor)
    do {
      try give(object, .error, out)
    } catch {
      object.userDestructor = nil  // the caller keeps `data` when the call fails
      throw error
    }
  }
}

/// Runs `body` with the error object a C pointer names; any thread.
@inline(__always)
private func withError<R>(_ p: OpaquePointer?, _ body: (ErrorObject) throws -> R) throws -> R {
  guard let result = try ObjectTable.withError(handleValue(p), body) else { throw badHandle(p) }
  return result
}

@_cdecl("aios_error_code")
public func aios_error_code(_ error: OpaquePointer?) -> Int32 {
  do { return try withError(error) { $0.code } } catch { return statusCode(of: error) }
}

@_cdecl("aios_error_kind")
public func aios_error_kind(_ error: OpaquePointer?) -> Int32 {
  do { return try withError(error) { errorKind(forCode: $0.code).rawValue } } catch { return statusCode(of: error) }
}

@_cdecl("aios_error_os_errno")
public func aios_error_os_errno(_ error: OpaquePointer?) -> Int32 {
  do {
    return try withError(error) { errorKind(forCode: $0.code) == .os ? -$0.code : 0 }
  } catch {
    return statusCode(of: error)
  }
}

@_cdecl("aios_error_message")
public func aios_error_message(_ error: OpaquePointer?) -> UnsafePointer<CChar>? {
  ObjectTable.withError(handleValue(error)) { UnsafePointer($0.message) }
}

@_cdecl("aios_error_user_data")
public func aios_error_user_data(_ error: OpaquePointer?) -> UnsafeMutableRawPointer? {
  ObjectTable.withError(handleValue(error)) { $0.isUserError ? $0.userData : nil } ?? nil
}

@_cdecl("aios_error_partial")
public func aios_error_partial(_ error: OpaquePointer?, _ data: UnsafeMutablePointer<UnsafeRawPointer?>?,
                               _ length: UnsafeMutablePointer<Int>?, _ expected: UnsafeMutablePointer<Int64>?) -> Int32 {
  status {
    try withError(error) { object in
      guard object.code == AIOS_EINCOMPLETE.rawValue else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      data?.pointee = UnsafeRawPointer(object.partial.baseAddress)
      length?.pointee = object.partial.count
      expected?.pointee = object.expected
    }
  }
}

@_cdecl("aios_error_consumed")
public func aios_error_consumed(_ error: OpaquePointer?) -> Int64 {
  do {
    return try withError(error) { object in
      guard object.code == AIOS_ELIMIT.rawValue else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      return object.consumed
    }
  } catch {
    return Int64(statusCode(of: error))
  }
}

@_cdecl("aios_error_bytes_sent")
public func aios_error_bytes_sent(_ error: OpaquePointer?) -> Int64 {
  do {
    return try withError(error) { object in
      guard object.code == AIOS_ECANCELLED.rawValue, object.bytesSent >= 0 else {
        throw RuntimeError(code: AIOS_EINVAL.rawValue)
      }
      return object.bytesSent
    }
  } catch {
    return Int64(statusCode(of: error))
  }
}

@_cdecl("aios_error_ref")
public func aios_error_ref(_ error: OpaquePointer?) -> Int32 { refObject(error, .error) }

@_cdecl("aios_error_unref")
public func aios_error_unref(_ error: OpaquePointer?) -> Int32 { unrefObject(error, .error) }

@_cdecl("aios_live_objects")
public func aios_live_objects(_ type: Int32) -> Int {
  switch UInt32(bitPattern: type) {
  case AIOS_OBJECT_LOOP.rawValue: return LiveObjects.loops.load(ordering: .relaxed)
  case AIOS_OBJECT_HANDLE.rawValue: return LiveObjects.handles.load(ordering: .relaxed)
  case AIOS_OBJECT_FUTURE.rawValue: return LiveObjects.futures.load(ordering: .relaxed)
  case AIOS_OBJECT_TASK.rawValue: return LiveObjects.tasks.load(ordering: .relaxed)
  case AIOS_OBJECT_ERROR.rawValue: return LiveObjects.errors.load(ordering: .relaxed)
  case AIOS_OBJECT_RUNNER.rawValue: return LiveObjects.runners.load(ordering: .relaxed)
  case AIOS_OBJECT_PRIMITIVE.rawValue: return LiveObjects.primitives.load(ordering: .relaxed)
  case AIOS_OBJECT_QUEUE.rawValue: return LiveObjects.queues.load(ordering: .relaxed)
  case AIOS_OBJECT_TRANSPORT.rawValue: return LiveObjects.transports.load(ordering: .relaxed)
  case AIOS_OBJECT_SERVER.rawValue: return LiveObjects.servers.load(ordering: .relaxed)
  case AIOS_OBJECT_STREAM.rawValue: return LiveObjects.streams.load(ordering: .relaxed)
  case AIOS_OBJECT_SUBPROCESS.rawValue: return LiveObjects.subprocesses.load(ordering: .relaxed)
  default: return Int(AIOS_EINVAL.rawValue)
  }
}
