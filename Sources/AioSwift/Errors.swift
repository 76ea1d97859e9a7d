// Errors named after asyncio's exceptions, and their status codes.
// The codes come from the public header (AIOS_ERRNO_MAP), so the Swift and C
// sides share one table.
internal import CAioSwift

/// The kind of an error: one per asyncio exception class.
public enum ErrorKind: Int32, Sendable {
  case runtime = 1, cancelled, timeout, invalidState, incompleteRead, limitOverrun
  case brokenBarrier, queueEmpty, queueFull, queueShutDown, os, user, group, gai
}

/// Every error of this library has a status code (an `AIOS_E*` value or
/// -errno) and a message; any other Swift error crossing into C is a user error.
public protocol AsyncioError: Error, CustomStringConvertible {
  var code: Int32 { get }
  var message: String { get }
}

extension AsyncioError {
  public var kind: ErrorKind { errorKind(forCode: code) }
  public var description: String {
    message.isEmpty ? "\(errorName(code)): \(errorMessage(code))" : "\(errorName(code)): \(message)"
  }
}

/// asyncio.CancelledError: the operation was cancelled, with an optional message.
public struct CancelledError: AsyncioError {
  public var message: String
  /// For an operation that sends (sock_sendall, sendfile): how many bytes
  /// went out before it was cancelled. nil for the rest.
  public var bytesSent: Int?
  public init(_ message: String? = nil, bytesSent: Int? = nil) {
    self.message = message ?? ""
    self.bytesSent = bytesSent
  }
  public var code: Int32 { AIOS_ECANCELLED.rawValue }
}

/// asyncio.TimeoutError.
public struct TimeoutError: AsyncioError {
  public var message: String
  public init(_ message: String = "") { self.message = message }
  public var code: Int32 { AIOS_ETIMEOUT.rawValue }
}

/// asyncio.InvalidStateError: a future read or set in the wrong state.
public struct InvalidStateError: AsyncioError {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var code: Int32 { AIOS_EINVALIDSTATE.rawValue }
}

/// RuntimeError and misuse: a closed loop, a wrong thread, a loop already
/// running, a bad argument. `code` says which.
public struct RuntimeError: AsyncioError {
  public var code: Int32
  public var message: String
  public init(code: Int32, _ message: String? = nil) {
    self.code = code
    self.message = message ?? errorMessage(code)
  }
}

/// OSError: `errno` as the operating system or libuv reported it.
public struct OSError: AsyncioError {
  public var errno: Int32
  public var message: String
  public init(errno: Int32, _ message: String? = nil) {
    self.errno = errno
    self.message = message ?? errorMessage(-errno)
  }
  public var code: Int32 { -errno }
}

/// An error raised by user code through the C ABI, carrying the user's data
/// (a binding's exception object). The data's destructor runs exactly once,
/// when the last copy of the error is gone.
public struct UserError: AsyncioError {
  package final class Payload {
    package let data: UnsafeMutableRawPointer?
    let destructor: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?
    /// The C error object that owns `data` (its handle, one C reference),
    /// when the payload refers to one rather than owning the data itself.
    package let foreignError: UInt64
    /// Drops the C reference of `foreignError`.
    private let releaseForeignError: ((UInt64) -> Void)?

    public init(data: UnsafeMutableRawPointer?,
                destructor: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?) {
      self.data = data
      self.destructor = destructor
      foreignError = 0
      releaseForeignError = nil
    }

    package init(data: UnsafeMutableRawPointer?, foreignError: UInt64,
                 release: @escaping (UInt64) -> Void) {
      self.data = data
      destructor = nil
      self.foreignError = foreignError
      releaseForeignError = release
    }

    deinit {
      if let releaseForeignError {
        releaseForeignError(foreignError)
      } else {
        destructor?(data)
      }
    }
  }
  public var message: String
  /// A binding's data (the C ABI's user error).
  package var payload: Payload?
  public init(_ message: String) { self.message = message }
  package init(_ message: String, payload: Payload?) {
    self.message = message
    self.payload = payload
  }
  public var code: Int32 { AIOS_EUSER.rawValue }
}

/// The errors of a task group's tasks, together (asyncio's ExceptionGroup).
public struct TaskGroupError: AsyncioError {
  public var errors: [any Error]
  public init(_ errors: [any Error]) { self.errors = errors }
  public var code: Int32 { AIOS_EGROUP.rawValue }
  public var message: String { "unhandled errors in a TaskGroup (\(errors.count) sub-exception\(errors.count == 1 ? "" : "s"))" }
}

/// asyncio.IncompleteReadError: a read ended before the bytes it needed.
public struct IncompleteReadError: AsyncioError {
  public var message: String
  /// What was read before EOF.
  public var partial: [UInt8]
  /// How many bytes the read needed (nil: a readuntil that met EOF).
  public var expected: Int?
  public init(partial: [UInt8], expected: Int?) {
    self.partial = partial
    self.expected = expected
    message = "\(partial.count) bytes read on a total of \(expected.map(String.init) ?? "undefined") expected bytes"
  }
  public init(_ message: String = "") {
    self.message = message
    partial = []
    expected = nil
  }
  public var code: Int32 { AIOS_EINCOMPLETE.rawValue }
}

/// asyncio.LimitOverrunError: a separator was not found within the limit.
public struct LimitOverrunError: AsyncioError {
  public var message: String
  /// How many bytes to consume before looking again.
  public var consumed: Int
  public init(_ message: String = "", consumed: Int = 0) {
    self.message = message
    self.consumed = consumed
  }
  public var code: Int32 { AIOS_ELIMIT.rawValue }
}

/// socket.gaierror: name resolution failed (an AIOS_EAI_* code).
public struct AddressInfoError: AsyncioError {
  public var code: Int32
  public var message: String
  public init(code: Int32, _ message: String? = nil) {
    self.code = code
    self.message = message ?? errorMessage(code)
  }
}

/// asyncio.BrokenBarrierError: the barrier was reset or aborted.
public struct BrokenBarrierError: AsyncioError {
  public var message: String
  public init(_ message: String = "") { self.message = message }
  public var code: Int32 { AIOS_EBROKENBARRIER.rawValue }
}

/// asyncio.QueueEmpty: get_nowait() on an empty queue.
public struct QueueEmpty: AsyncioError {
  public var message: String
  public init(_ message: String = "") { self.message = message }
  public var code: Int32 { AIOS_EQUEUEEMPTY.rawValue }
}

/// asyncio.QueueFull: put_nowait() on a full queue.
public struct QueueFull: AsyncioError {
  public var message: String
  public init(_ message: String = "") { self.message = message }
  public var code: Int32 { AIOS_EQUEUEFULL.rawValue }
}

/// asyncio.QueueShutDown: a put, or a get on an empty queue, once it is shut down.
public struct QueueShutDown: AsyncioError {
  public var message: String
  public init(_ message: String = "") { self.message = message }
  public var code: Int32 { AIOS_EQUEUESHUTDOWN.rawValue }
}

/// Swift's CancellationError, which Task.sleep and Swift's other awaits throw
/// once an asyncio cancellation reached them, is asyncio's CancelledError to
/// the scopes that sort errors (timeout, TaskGroup).
func asAsyncioError(_ error: any Error) -> any Error {
  error is CancellationError ? CancelledError() : error
}

/// The Swift error for a status code, as C hands it in.
package func makeError(code: Int32, message: String?) -> any Error {
  switch errorKind(forCode: code) {
  case .cancelled: return CancelledError(message)
  case .timeout: return TimeoutError(message ?? "")
  case .invalidState: return InvalidStateError(message ?? errorMessage(code))
  case .incompleteRead: return IncompleteReadError(message ?? "")
  case .limitOverrun: return LimitOverrunError(message ?? "")
  case .brokenBarrier: return BrokenBarrierError(message ?? "")
  case .queueEmpty: return QueueEmpty(message ?? "")
  case .queueFull: return QueueFull(message ?? "")
  case .queueShutDown: return QueueShutDown(message ?? "")
  case .os: return OSError(errno: -code, message)
  case .user: return UserError(message ?? errorMessage(code))
  case .gai: return AddressInfoError(code: code, message)
  case .runtime, .group: return RuntimeError(code: code, message)
  }
}

/// The status code of any error: its own for ours, AIOS_EUSER for the rest.
package func statusCode(of error: any Error) -> Int32 {
  (error as? any AsyncioError)?.code ?? AIOS_EUSER.rawValue
}

package func errorKind(forCode code: Int32) -> ErrorKind {
  switch code {
  case AIOS_ECANCELLED.rawValue: return .cancelled
  case AIOS_ETIMEOUT.rawValue: return .timeout
  case AIOS_EINVALIDSTATE.rawValue: return .invalidState
  case AIOS_EINCOMPLETE.rawValue: return .incompleteRead
  case AIOS_ELIMIT.rawValue: return .limitOverrun
  case AIOS_EBROKENBARRIER.rawValue: return .brokenBarrier
  case AIOS_EQUEUEEMPTY.rawValue: return .queueEmpty
  case AIOS_EQUEUEFULL.rawValue: return .queueFull
  case AIOS_EQUEUESHUTDOWN.rawValue: return .queueShutDown
  case AIOS_EUSER.rawValue: return .user
  case AIOS_EGROUP.rawValue: return .group
  case -4095 ..< 0 where code > -3000: return .os
  case -3115 ... -3101: return .gai
  default: return .runtime
  }
}

/// The error for a status libuv reported: its EAI_* codes, which meet our
/// own, move to ours (AIOS_EAI_*); the rest are -errno.
package func uvError(_ status: Int32, _ message: String? = nil) -> any Error {
  if status <= -3000 && status >= -3014 { return AddressInfoError(code: status - 101, message) }
  return OSError(errno: -status, message)
}

/// The message for a status code: the header's table for ours, strerror for -errno.
package func errorMessage(_ code: Int32) -> String {
  String(cString: aiosi_status_message(code))
}

/// The name of a status code: "AIOS_ECANCELLED", "ECONNRESET", "UNKNOWN".
package func errorName(_ code: Int32) -> String {
  String(cString: aiosi_status_name(code))
}
