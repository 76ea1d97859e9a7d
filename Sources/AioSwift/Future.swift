// asyncio's Future: a result, an error or a cancellation, and done callbacks
// that are always scheduled on the loop, never run inline.
internal import CAioSwift

/// A C done callback, called by the loop's ForeignInterface (which turns
/// the future into a C handle).
package typealias ForeignDoneFunction = UnsafeRawPointer

/// A registered Swift done callback; its identity is its token for removal.
public final class DoneCallbackToken {
  let body: (AnyFuture) -> Void
  init(_ body: @escaping (AnyFuture) -> Void) { self.body = body }
}

/// Kept small (24 bytes): every pending task has one in the future it awaits.
enum DoneCallback {
  case swift(DoneCallbackToken)
  case foreign(ForeignDoneFunction, UnsafeMutableRawPointer?)
  case foreignOwned(ForeignDoneFunction, OwnedArgument)
  case wakeup(TaskBase)
  case operation(Operation)

  @inline(__always)
  func invoke(_ future: AnyFuture) {
    switch self {
    case .swift(let token): token.body(future)
    case .foreign(let fn, let arg): future.loop.foreign?.callDone(fn, arg, of: future)
    case .foreignOwned(let fn, let arg): future.loop.foreign?.callDone(fn, arg.value, of: future)
    case .wakeup(let task): task.wakeup(from: future)
    case .operation(let operation): operation.innerDone(future)
    }
  }
}

public class AnyFuture: CustomStringConvertible {
  enum State: UInt8 { case pending, cancelled, finished }

  public let loop: Loop
  var state = State.pending
  var errorRetrieved = false
  /// The error of a failed future, or the CancelledError of a cancelled one.
  var error: (any Error)?
  // Most futures get one callback (the task awaiting them): keep it inline.
  private var firstCallback: DoneCallback?
  private var moreCallbacks: [DoneCallback] = []

  // A C result (a pointer and its destructor) and a C handle are kept by
  // the futures C makes or sees (RawFuture and its subclasses, tasks,
  // gather's and shield's futures), not by Swift's Future<T>: these
  // accessors are theirs to override.
  /// A result set through the C ABI, freed with its destructor.
  var cValue: UnsafeMutableRawPointer? {
    get { nil }
    set {}
  }
  var cDestructor: CDestructor? {
    get { nil }
    set {}
  }
  /// Whether the future keeps a C result (cValue, cDestructor).
  var keepsCResult: Bool { false }
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 {
    get { 0 }
    set {}
  }

  /// A pending future; use `loop.createFuture()` from Swift.
  public init(loop: Loop) {
    self.loop = loop
    LiveObjects.futures.add(1, ordering: .relaxed)
  }

  init(taskOn loop: Loop) {
    self.loop = loop
    LiveObjects.tasks.add(1, ordering: .relaxed)
  }

  deinit {
    if state == .pending { tellOperationsWaiting() }
    if isTask {
      LiveObjects.tasks.subtract(1, ordering: .relaxed)
    } else {
      LiveObjects.futures.subtract(1, ordering: .relaxed)
    }
    if state == .finished, let error, !errorRetrieved {
      loop.callExceptionHandler(ExceptionContext(
        message: "\(isTask ? "Task" : "Future") exception was never retrieved",
        error: error))
    }
  }

  public var isDone: Bool { state != .pending }
  /// True for tasks (a virtual call, cheaper than a dynamic cast).
  public var isTask: Bool { false }
  public var isCancelled: Bool { state == .cancelled }

  // MARK: Finishing

  /// Finishes with a C value the future then owns (freed by `destructor`).
  /// A value the pending future already owned (a sleep's result) is freed.
  package func setCResult(_ value: UnsafeMutableRawPointer?, destructor: CDestructor?) throws {
    try checkSettable()
    guard keepsCResult || value == nil else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "\(typeName) holds no C result")
    }
    let (previous, previousDestructor) = (cValue, cDestructor)
    cValue = value
    cDestructor = destructor
    finish(.finished)
    // Last: the destructor is user code, which may set this future again
    // (refused now) or free it.
    previousDestructor?(previous)
  }

  /// Whether code outside the library may set the outcome: a task's comes
  /// from its body (asyncio: "Task does not support set_result operation"),
  /// an operation's (a lock's acquire, a queue's get) from its primitive.
  var outcomeIsSetFromOutside: Bool { true }

  private func checkSettable() throws {
    guard outcomeIsSetFromOutside else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue,
                         "\(typeName) does not support set_result or set_exception")
    }
    guard state == .pending else { throw InvalidStateError("invalid state: \(self)") }
  }

  /// asyncio's set_exception. A CancelledError is refused: use cancel().
  public func setError(_ error: any Error) throws {
    guard !(error is CancelledError) else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "use cancel() to cancel a future")
    }
    try checkSettable()
    self.error = error
    finish(.finished)
  }

  /// asyncio's Future.cancel. Returns false if the future was already done.
  @discardableResult
  public func cancel(message: String? = nil) -> Bool {
    cancelFuture(message: message)
  }

  /// The plain future's cancel, which a task's cancel uses once it is final.
  final func cancelFuture(message: String?) -> Bool {
    guard state == .pending else { return false }
    error = CancelledError(message)
    finish(.cancelled)
    return true
  }

  /// `inline` runs the callbacks now rather than on the next iteration: for
  /// an operation completing from its own scheduled step, whose awaiters
  /// resume in that same iteration (see Operation).
  final func finish(_ newState: State, inline: Bool = false) {
    state = newState
    if inline { runCallbacks() } else { scheduleCallbacks() }
    didFinish()
  }

  private func runCallbacks() {
    let first = firstCallback.take()
    if !moreCallbacks.isEmpty {
      let more = moreCallbacks
      moreCallbacks = []
      first?.invoke(self)
      for callback in more { callback.invoke(self) }
    } else {
      first?.invoke(self)
    }
  }

  /// Called once the future is done (tasks leave the loop's task list).
  func didFinish() {}

  /// Operations waiting on a future freed unfinished must not keep a
  /// pointer to it.
  private func tellOperationsWaiting() {
    if case .operation(let operation)? = firstCallback { operation.innerVanished(self) }
    for case .operation(let operation) in moreCallbacks { operation.innerVanished(self) }
  }

  // MARK: Reading

  /// The CancelledError this future raises (asyncio's _make_cancelled_error).
  public func makeCancelledError() -> CancelledError {
    (error as? CancelledError) ?? CancelledError()
  }

  /// Throws what result() would throw; returns if there is a result.
  public func checkResult() throws {
    switch state {
    case .pending: throw InvalidStateError("Result is not set.")
    case .cancelled: throw makeCancelledError()
    case .finished:
      if let error {
        errorRetrieved = true
        throw error
      }
    }
  }

  /// asyncio's exception(): the error, nil for a result; marks it retrieved.
  public func exception() throws -> (any Error)? {
    switch state {
    case .pending: throw InvalidStateError("Exception is not set.")
    case .cancelled: throw makeCancelledError()
    case .finished:
      errorRetrieved = true
      return error
    }
  }

  /// The C value of a finished future (nil for Swift-typed results).
  package var cResult: UnsafeMutableRawPointer? { cValue }

  /// Moves the C result out: the caller owns it from then on.
  package func takeCResult() throws -> (UnsafeMutableRawPointer?, CDestructor?) {
    try checkResult()
    defer {
      cValue = nil
      cDestructor = nil
    }
    return (cValue, cDestructor)
  }

  /// Forgets the C value without freeing it: the call that gave it failed,
  /// and its caller keeps it.
  package func disownCResult() {
    cValue = nil
    cDestructor = nil
  }

  /// Marks an error as retrieved without reading it.
  package func markErrorRetrieved() { errorRetrieved = true }

  // MARK: Done callbacks

  /// Schedules `body(self)` once the future is done (at once if it is).
  @discardableResult
  public func addDoneCallback(_ body: @escaping (AnyFuture) -> Void) -> DoneCallbackToken {
    let token = DoneCallbackToken(body)
    addDoneCallback(.swift(token))
    return token
  }

  /// C done callbacks, compared by function and argument for removal.
  /// A C done callback, called through `foreign`; `destructor` (if any)
  /// frees `arg` once, after the callback ran, once it is removed, or with
  /// the future.
  package func addForeignDoneCallback(_ fn: ForeignDoneFunction, _ arg: UnsafeMutableRawPointer?,
                                     destructor: CDestructor? = nil, foreign: any ForeignInterface) {
    loop.useForeignInterface(foreign)
    if let destructor {
      addDoneCallback(.foreignOwned(fn, OwnedArgument(arg, destructor)))
    } else {
      addDoneCallback(.foreign(fn, arg))
    }
  }

  func addDoneCallback(_ callback: DoneCallback) {
    if state != .pending {
      loop.schedule(.callback(self, callback))
    } else if firstCallback == nil && moreCallbacks.isEmpty {
      firstCallback = callback
    } else {
      moreCallbacks.append(callback)
    }
  }

  /// Removes the callback registered under `token`. Returns how many were removed.
  @discardableResult
  public func removeDoneCallback(_ token: DoneCallbackToken) -> Int {
    removeDoneCallbacks {
      if case .swift(let registered) = $0 { return registered === token }
      return false
    }
  }

  /// Removes every registration of a C callback with this argument.
  package func removeForeignDoneCallback(_ fn: ForeignDoneFunction, _ arg: UnsafeMutableRawPointer?) -> Int {
    removeDoneCallbacks {
      switch $0 {
      case .foreign(let f, let a): return f == fn && a == arg
      case .foreignOwned(let f, let a): return f == fn && a.value == arg
      default: return false
      }
    }
  }

  func removeWakeup(_ task: TaskBase) {
    removeDoneCallbacks {
      if case .wakeup(let t) = $0 { return t === task }
      return false
    }
  }

  @discardableResult
  private func removeDoneCallbacks(where matches: (DoneCallback) -> Bool) -> Int {
    var removed = 0
    if let first = firstCallback, matches(first) {
      firstCallback = nil
      removed += 1
    }
    let before = moreCallbacks.count
    moreCallbacks.removeAll(where: matches)
    removed += before - moreCallbacks.count
    // Keep the inline slot filled first, so registration order is kept.
    if firstCallback == nil && !moreCallbacks.isEmpty {
      firstCallback = moreCallbacks.removeFirst()
    }
    return removed
  }

  private func scheduleCallbacks() {
    guard !loop.isClosed else {
      firstCallback = nil
      moreCallbacks = []
      return
    }
    if let first = firstCallback.take() { loop.schedule(.callback(self, first)) }
    if !moreCallbacks.isEmpty {
      for callback in moreCallbacks { loop.schedule(.callback(self, callback)) }
      moreCallbacks = []
    }
  }

  public var description: String {
    var text = "<\(typeName)"
    switch state {
    case .pending: text += " pending"
    case .cancelled: text += " cancelled"
    case .finished: text += error.map { " finished error=\($0)" } ?? " finished"
    }
    return text + ">"
  }

  var typeName: String { "Future" }
}

/// A future whose result is a C value: a pointer, freed by its destructor
/// with the future unless it is taken. The futures C makes (aios_future_new,
/// a sleep's, an operation's) are these; Swift's typed ones are Future<T>.
package class RawFuture: AnyFuture {
  private var kept = KeptCResult()
  private var handle: UInt64 = 0
  final override var cValue: UnsafeMutableRawPointer? {
    get { kept.value }
    set { kept.value = newValue }
  }
  final override var cDestructor: CDestructor? {
    get { kept.destructor }
    set { kept.destructor = newValue }
  }
  final override var keepsCResult: Bool { true }
  package final override var foreignHandle: UInt64 {
    get { handle }
    set { handle = newValue }
  }
  deinit { kept.free() }
}

/// The C result a future C sees keeps.
struct KeptCResult {
  var value: UnsafeMutableRawPointer?
  var destructor: CDestructor?
  func free() { destructor?(value) }
}

/// A future with a Swift result of type `T`.
public final class Future<T>: AnyFuture {
  private var storedValue: T?

  /// asyncio's set_result.
  public func setResult(_ value: T) throws {
    guard state == .pending else { throw InvalidStateError("invalid state: \(self)") }
    storedValue = value
    finish(.finished)
  }

  /// asyncio's result(): the value, or throws the error, the cancellation,
  /// or InvalidStateError when not done.
  public func result() throws -> T {
    try checkResult()
    return storedValue!
  }

  /// Awaits the future from a task of its loop, then returns its result.
  public var value: T {
    get async throws {
      if !isDone { try await suspendCurrentTask(until: self) }
      return try result()
    }
  }
}

extension Loop {
  /// asyncio's create_future.
  public func createFuture<T>(of type: T.Type = T.self) -> Future<T> { Future<T>(loop: self) }
}

extension AnyFuture {
  /// Awaits the future from a task of its loop; throws its error or cancellation.
  public func wait() async throws {
    if !isDone { try await suspendCurrentTask(until: self) }
    try checkResult()
  }
}
